//! Prints the size and SHA-256 of the initramfs the build script made and this binary embeds.

use sha2::{Digest, Sha256};

/// The initramfs, as `rootfs::build_script` exported it.
static INITRAMFS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/rootfs/embedded.cpio.gz"));

fn main() {
    let digest: String = Sha256::digest(INITRAMFS).iter().map(|b| format!("{b:02x}")).collect();
    println!("initramfs: {} bytes, sha256 {digest}", INITRAMFS.len());
}
