//! Builds `rootfs.toml` into a tree and a gzip'd newc initramfs under OUT_DIR; cargo reruns this only when the spec or a file the tree was made from changes.

fn main() -> anyhow::Result<()> {
    let mut options = rootfs::build_script::Options::new("rootfs.toml");
    options.export = Some(rootfs::export::Format::Cpio);
    rootfs::build_script::run(&options)?.emit();
    Ok(())
}
