//! What the dynamic loader reads from a file: the ELF identity, `PT_INTERP` and the dynamic section, or a `#!` line.
//!
//! Only the headers, the program headers, the dynamic section, the few
//! strings it names and the version tables are read, a window at a time
//! with `pread(2)`: the pages holding code and data are never read from
//! disk.

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;
use std::fs::File;
use std::path::Path;

use anyhow::{Context, Result, ensure};
use goblin::container::Ctx;
use goblin::elf::dynamic::{
    DF_1_NODEFLIB, DF_1_PIE, DT_FLAGS_1, DT_NEEDED, DT_RPATH, DT_RUNPATH, DT_SONAME, DT_STRSZ,
    DT_STRTAB, Dynamic,
};
use goblin::elf::header::header64::SIZEOF_EHDR;
use goblin::elf::header::{self, Header};
use goblin::elf::note::{NT_GNU_ABI_TAG, NT_GNU_PROPERTY_TYPE_0, NoteDataIterator};
use goblin::elf::program_header::{PT_DYNAMIC, PT_INTERP, PT_LOAD, PT_NOTE, ProgramHeader};
use serde::Deserialize;

mod gnu_notes;
mod versions;

pub use self::gnu_notes::{IsaLevel, MachineNeeds};
pub use self::versions::{Needed, NeededVersion};

/// The fields of the ELF header that the loader compares before it accepts a
/// candidate library (`open_verify` in glibc's `elf/dl-load.c`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ident {
    /// `EI_CLASS`: 1 for 32-bit, 2 for 64-bit.
    pub class: u8,
    /// `EI_DATA`: 1 for little endian, 2 for big endian.
    pub data: u8,
    /// `e_machine`.
    pub machine: u16,
}

impl Ident {
    /// A short human name such as `x86_64` or `elf32 i386`, for messages.
    pub fn describe(&self) -> String {
        let class = if self.class == header::ELFCLASS64 { "elf64" } else { "elf32" };
        format!("{class} {}", header::machine_to_str(self.machine).to_lowercase())
    }
}

/// An ELF file as the loader sees it.
#[derive(Clone, Debug, Default)]
pub struct Object {
    pub ident: Option<Ident>,
    /// `e_type`.
    pub e_type: u16,
    /// `EI_OSABI`: glibc's loader accepts only System V (0) and GNU (3).
    pub osabi: u8,
    /// `PT_INTERP`: the program interpreter the kernel maps for an executable.
    pub interp: Option<String>,
    /// Whether the file has a `PT_DYNAMIC` segment at all.
    pub dynamic: bool,
    /// `DT_NEEDED` entries, in file order (the loader's order).
    pub needed: Vec<String>,
    pub soname: Option<String>,
    /// `DT_RPATH`, already dropped when `DT_RUNPATH` is present, as glibc's
    /// `elf/get-dynamic-info.h` does: such an RPATH is never used, not even by
    /// the objects this one loads.
    pub rpath: Option<String>,
    pub runpath: Option<String>,
    /// `DF_1_NODEFLIB`: skip the cache and the default directories for the
    /// dependencies of this object.
    pub nodeflib: bool,
    /// `DF_1_PIE`: a position-independent executable.
    pub pie: bool,
    /// Why the file is not a usable ELF object although its identity bytes
    /// could be read (the loader checks those first).
    pub malformed: Option<String>,
    /// The libraries the object declares it may `dlopen(3)`, from its
    /// `.note.dlopen` notes, in file order.
    pub dlopen: Vec<DlopenEntry>,
    /// What was wrong with those notes or the symbol version tables: a
    /// broken one is only reported, and the object stays usable.
    pub warnings: Vec<String>,
    /// What the object's GNU notes say it needs of the CPU and kernel.
    pub machine: MachineNeeds,
    /// `DT_VERNEED`: the symbol versions it needs, library by library.
    pub version_needs: Vec<Needed>,
    /// `DT_VERDEF`: the versions it defines (the first is its own name).
    pub version_defs: Vec<String>,
}

/// The note type of the FDO "ELF dlopen metadata" notes (owner `FDO`,
/// section `.note.dlopen`): <https://systemd.io/ELF_DLOPEN_METADATA/>.
pub const NT_FDO_DLOPEN: u32 = 0x407c_0c0a;

/// The owner (note name) of the dlopen metadata notes.
const FDO_OWNER: &str = "FDO";

/// How much an object needs a library it declares it may `dlopen`, most
/// needed first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DlopenPriority {
    /// "Core functionality needs the dependency, the binary will not work
    /// if it cannot be found."
    Required,
    /// "The binary will work but in most cases the dependency should be
    /// provided": what the format assumes when a note says nothing.
    #[default]
    Recommended,
    /// "Only needed for full-featured installations."
    Suggested,
}

impl fmt::Display for DlopenPriority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DlopenPriority::Required => "required",
            DlopenPriority::Recommended => "recommended",
            DlopenPriority::Suggested => "suggested",
        })
    }
}

/// One object of a `.note.dlopen` JSON array.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DlopenEntry {
    pub feature: Option<String>,
    pub description: Option<String>,
    pub priority: DlopenPriority,
    /// Alternatives, most preferred first: a program tries them in turn
    /// and uses the first that loads. Never empty.
    pub sonames: Vec<String>,
}

impl Object {
    /// Statically linked (including static-pie): the loader is never involved.
    pub fn is_static(&self) -> bool {
        self.interp.is_none()
            && self.needed.is_empty()
            && (self.e_type == header::ET_EXEC || self.pie || !self.dynamic)
    }
}

/// A `#!` line as the kernel's `binfmt_script` splits it: the interpreter and
/// at most one argument (everything after the first blank, trimmed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shebang {
    pub interpreter: String,
    pub arg: Option<String>,
}

/// What kind of file the kernel would find when asked to execute it.
#[derive(Clone, Debug)]
pub enum FileKind {
    Elf(std::sync::Arc<Object>),
    Script(Shebang),
    /// Neither ELF nor a script: a data file, or an ELF file too broken to read
    /// (the text says why).
    Other(String),
    /// It could not be opened or read at all (the text says why).
    Unreadable(String),
}

/// The kernel reads at most this many bytes of a `#!` line (`BINPRM_BUF_SIZE`).
const SHEBANG_MAX: usize = 256;

/// Reads the file at `host_path` the way the kernel and the loader look at it.
pub fn read(host_path: &Path) -> Result<FileKind> {
    let file = File::open(host_path)
        .with_context(|| format!("failed to open `{}`", host_path.display()))?;
    let size =
        file.metadata().with_context(|| format!("failed to stat `{}`", host_path.display()))?.len();
    if size < 4 {
        return Ok(FileKind::Other(not_elf(size)));
    }
    let src = FileSource::new(&file, size)
        .with_context(|| format!("failed to read `{}`", host_path.display()))?;
    let head = &src.head;
    if head.starts_with(b"#!") {
        return Ok(match parse_shebang(&head[..head.len().min(SHEBANG_MAX)]) {
            Some(shebang) => FileKind::Script(shebang),
            None => FileKind::Other("`#!` line names no interpreter".to_string()),
        });
    }
    if !head.starts_with(header::ELFMAG) {
        return Ok(FileKind::Other(not_elf(size)));
    }
    Ok(FileKind::Elf(std::sync::Arc::new(parse_source(&src))))
}

/// The loader's complaint about a file that is not ELF: it reads the header
/// first, so a file shorter than an ELF64 header is "too short"
/// (`open_verify` in `elf/dl-load.c`).
pub fn not_elf(len: u64) -> String {
    if len < SIZEOF_EHDR as u64 {
        "file too short".to_string()
    } else {
        "invalid ELF header".to_string()
    }
}

/// Splits a `#!` line as `fs/binfmt_script.c` does.
pub fn parse_shebang(bytes: &[u8]) -> Option<Shebang> {
    let rest = bytes.strip_prefix(b"#!")?;
    let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
    let line = String::from_utf8_lossy(&rest[..end]);
    // Only blanks are trimmed: a `\r` of a CRLF line stays part of the
    // interpreter's name, and the exec fails, as it does with the kernel.
    let line = line.trim_matches(|c| c == ' ' || c == '\t');
    if line.is_empty() {
        return None;
    }
    let (interpreter, arg) = match line.find([' ', '\t']) {
        Some(i) => {
            let arg = line[i..].trim_matches(|c| c == ' ' || c == '\t');
            (&line[..i], (!arg.is_empty()).then(|| arg.to_string()))
        }
        None => (line, None),
    };
    Some(Shebang { interpreter: interpreter.to_string(), arg })
}

/// Parses the parts of an ELF image the loader needs. The identity comes
/// first and survives a malformed remainder, which is recorded instead.
pub fn parse(bytes: &[u8]) -> Object {
    parse_source(bytes)
}

/// Where the bytes of an ELF file come from: memory, or a file read piece
/// by piece with `pread(2)`. Reading only the pieces the loader looks at
/// costs a few small reads per file, where a memory map would cost page
/// faults and, in a threaded program, TLB shootdowns when it is unmapped.
trait Source {
    /// The size of the file: no read may go past it.
    fn size(&self) -> u64;
    /// Up to `len` bytes at `offset` (fewer at the end of the file).
    fn read_at(&self, offset: u64, len: usize) -> std::io::Result<Cow<'_, [u8]>>;
}

impl Source for [u8] {
    fn size(&self) -> u64 {
        self.len() as u64
    }

    fn read_at(&self, offset: u64, len: usize) -> std::io::Result<Cow<'_, [u8]>> {
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(self.len());
        Ok(Cow::Borrowed(&self[start..start.saturating_add(len).min(self.len())]))
    }
}

/// A file read with `pread(2)`, its first page read once: the ELF header,
/// the program headers, `PT_INTERP` and the notes normally all lie there.
/// A piece beyond it is read with the [`WINDOW`] that follows, kept for the
/// next pieces: the dynamic strings and the version tables lie close
/// together, and were one read each (20,000 reads for all host programs,
/// where windows make about 3,000).
struct FileSource<'a> {
    file: &'a File,
    /// The size when the file was opened.
    size: u64,
    /// The first [`HEAD_SIZE`] bytes (all of a smaller file).
    head: Vec<u8>,
    /// The windows read beyond the head: their offset and bytes.
    windows: RefCell<Vec<(u64, Vec<u8>)>>,
}

/// How much of a file is read at once first: one page.
const HEAD_SIZE: u64 = 4096;

/// How much is read at once beyond the head: four pages.
const WINDOW: usize = 16384;

impl<'a> FileSource<'a> {
    fn new(file: &'a File, size: u64) -> std::io::Result<FileSource<'a>> {
        let head = pread(file, 0, size.min(HEAD_SIZE) as usize)?;
        Ok(FileSource { file, size, head, windows: RefCell::new(Vec::new()) })
    }

    /// Up to `len` bytes at `offset` from a window read before, or from a
    /// new window starting there.
    fn windowed(&self, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
        let within = |(start, bytes): &(u64, Vec<u8>)| {
            let end = start + bytes.len() as u64;
            (*start <= offset && offset.saturating_add(len as u64) <= end)
                .then(|| bytes[(offset - start) as usize..][..len].to_vec())
        };
        if let Some(piece) = self.windows.borrow().iter().find_map(within) {
            return Ok(piece);
        }
        let bytes = pread(self.file, offset, len.max(WINDOW))?;
        let piece = bytes[..len.min(bytes.len())].to_vec();
        self.windows.borrow_mut().push((offset, bytes));
        Ok(piece)
    }
}

impl Source for FileSource<'_> {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&self, offset: u64, len: usize) -> std::io::Result<Cow<'_, [u8]>> {
        let whole_file = self.head.len() as u64 >= self.size;
        if let Ok(start) = usize::try_from(offset)
            && start <= self.head.len()
        {
            let end = start.saturating_add(len);
            if end <= self.head.len() {
                return Ok(Cow::Borrowed(&self.head[start..end]));
            }
            if whole_file {
                return Ok(Cow::Borrowed(&self.head[start..]));
            }
        }
        self.windowed(offset, len).map(Cow::Owned)
    }
}

/// Up to `len` bytes at `offset`, fewer only at the end of the file.
fn pread(file: &File, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let mut filled = 0;
    while filled < len {
        match std::os::unix::fs::FileExt::read_at(file, &mut buf[filled..], offset + filled as u64)
        {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(filled);
    Ok(buf)
}

/// Reads exactly `len` bytes at `offset`, or says what lies outside the file.
/// Sizes and offsets come from the file itself, so they are checked
/// against its size before anything is allocated.
fn exact<'a, S: Source + ?Sized>(
    src: &'a S,
    offset: u64,
    len: u64,
    what: &str,
) -> Result<Cow<'a, [u8]>> {
    ensure!(
        offset.checked_add(len).is_some_and(|end| end <= src.size()),
        "{what} lies outside the file"
    );
    let len = usize::try_from(len).context("a size beyond this machine's address space")?;
    let bytes = src.read_at(offset, len).with_context(|| format!("reading {what}"))?;
    ensure!(bytes.len() == len, "{what} lies outside the file");
    Ok(bytes)
}

fn parse_source<S: Source + ?Sized>(src: &S) -> Object {
    let mut object = Object::default();
    let head = match src.read_at(0, SIZEOF_EHDR) {
        Ok(head) => head,
        Err(e) => {
            object.malformed = Some(format!("reading the ELF header: {e}"));
            return object;
        }
    };
    let (ident, osabi) = read_ident(&head).unzip();
    object.ident = ident;
    object.osabi = osabi.unwrap_or_default();
    if let Err(e) = parse_into(src, &head, &mut object) {
        object.malformed = Some(format!("{e:#}"));
    }
    object
}

/// The identity bytes and `e_machine`, read without goblin so that they
/// survive a header goblin rejects: the loader compares them first.
fn read_ident(head: &[u8]) -> Option<(Ident, u8)> {
    let e_ident = head.get(..header::SIZEOF_IDENT)?;
    // `e_machine` follows `e_ident` and the two bytes of `e_type` in both
    // classes, in the file's byte order.
    let at = header::SIZEOF_IDENT + 2;
    let machine = head.get(at..at + 2).map(|m| match e_ident[header::EI_DATA] {
        header::ELFDATA2MSB => u16::from_be_bytes([m[0], m[1]]),
        _ => u16::from_le_bytes([m[0], m[1]]),
    });
    let ident = Ident {
        class: e_ident[header::EI_CLASS],
        data: e_ident[header::EI_DATA],
        machine: machine.unwrap_or(0),
    };
    Some((ident, e_ident[header::EI_OSABI]))
}

/// The steps of reading what the loader reads, in the loader's order.
fn parse_into<S: Source + ?Sized>(src: &S, head: &[u8], object: &mut Object) -> Result<()> {
    let (header, ctx) = read_header(head)?;
    let phdrs = read_program_headers(src, &header, ctx)?;
    object.e_type = header.e_type;
    object.interp = read_interp(src, &phdrs)?;
    read_dynamic(src, &phdrs, ctx, object)?;
    read_notes(src, &phdrs, ctx, object);
    Ok(())
}

/// The ELF header, and the class and byte order it gives everything else.
fn read_header(head: &[u8]) -> Result<(Header, Ctx)> {
    let header: Header = goblin::elf::Elf::parse_header(head).context("reading the ELF header")?;
    let container = header.container().context("reading the ELF header")?;
    let endian = header.endianness().context("reading the ELF header")?;
    Ok((header, Ctx::new(container, endian)))
}

fn read_program_headers<S: Source + ?Sized>(
    src: &S,
    header: &Header,
    ctx: Ctx,
) -> Result<Vec<ProgramHeader>> {
    let phnum = header.e_phnum as usize;
    let size = (phnum * ProgramHeader::size(ctx)) as u64;
    let table = exact(src, header.e_phoff, size, "the program headers")?;
    ProgramHeader::parse(&table, 0, phnum, ctx).context("reading the program headers")
}

/// `PT_INTERP`: the program interpreter, up to its NUL.
fn read_interp<S: Source + ?Sized>(src: &S, phdrs: &[ProgramHeader]) -> Result<Option<String>> {
    let mut interp = None;
    for phdr in phdrs.iter().filter(|p| p.p_type == PT_INTERP) {
        let raw = exact(src, phdr.p_offset, phdr.p_filesz, "PT_INTERP")?;
        let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
        interp = Some(String::from_utf8_lossy(&raw[..end]).into_owned());
    }
    Ok(interp)
}

/// The dynamic section: flags, and the names it points to in its string
/// table (`DT_NEEDED`, `DT_SONAME`, `DT_RPATH`, `DT_RUNPATH`).
fn read_dynamic<S: Source + ?Sized>(
    src: &S,
    phdrs: &[ProgramHeader],
    ctx: Ctx,
    object: &mut Object,
) -> Result<()> {
    let Some(dynamic_phdr) = phdrs.iter().find(|p| p.p_type == PT_DYNAMIC) else {
        return Ok(());
    };
    // goblin reads the segment at `p_offset` of the bytes it is given: give
    // it the segment alone, starting at 0.
    let segment = exact(src, dynamic_phdr.p_offset, dynamic_phdr.p_filesz, "PT_DYNAMIC")?;
    let local = ProgramHeader { p_offset: 0, ..dynamic_phdr.clone() };
    let Some(dynamic) =
        Dynamic::parse(&segment, &[local], ctx).context("reading the dynamic section")?
    else {
        return Ok(());
    };
    object.dynamic = true;
    let mut strtab_addr = None;
    let mut strsz = 0u64;
    let mut tables = versions::Tables::default();
    for d in &dynamic.dyns {
        match d.d_tag {
            DT_STRTAB => strtab_addr = Some(d.d_val),
            DT_STRSZ => strsz = d.d_val,
            tag if tables.take(tag, d.d_val) => {}
            DT_FLAGS_1 => {
                object.nodeflib = d.d_val & DF_1_NODEFLIB != 0;
                object.pie = d.d_val & DF_1_PIE != 0;
            }
            _ => {}
        }
    }
    let Some(strtab_addr) = strtab_addr else {
        return Ok(());
    };
    // The string table is addressed by a virtual address; find the file
    // offset through the PT_LOAD segment that maps it.
    let offset =
        vm_to_offset(phdrs, strtab_addr).context("DT_STRTAB is not inside any PT_LOAD segment")?;
    let strings = DynStrings { src, offset, size: strsz };
    let mut rpath = None;
    for d in &dynamic.dyns {
        match d.d_tag {
            DT_NEEDED => object.needed.push(strings.get(d.d_val)?),
            DT_SONAME => object.soname = Some(strings.get(d.d_val)?),
            DT_RPATH => rpath = Some(strings.get(d.d_val)?),
            DT_RUNPATH => object.runpath = Some(strings.get(d.d_val)?),
            _ => {}
        }
    }
    if object.runpath.is_none() {
        object.rpath = rpath;
    }
    versions::read_into(src, phdrs, ctx, tables, &strings, object);
    Ok(())
}

/// The dynamic string table, read a string at a time: goblin's
/// `Strtab::parse` would split and check every symbol name of a big library
/// first, where the loader needs only the few the dynamic entries name.
struct DynStrings<'a, S: ?Sized> {
    src: &'a S,
    /// File offset of the table.
    offset: u64,
    /// `DT_STRSZ`.
    size: u64,
}

impl<S: Source + ?Sized> DynStrings<'_, S> {
    /// The NUL-terminated string at `offset` in the table.
    fn get(&self, offset: u64) -> Result<String> {
        let start = self.offset.saturating_add(offset);
        let in_file = self.src.size().saturating_sub(start);
        let available = self.size.checked_sub(offset).map(|n| n.min(in_file)).filter(|n| *n > 0);
        let available = available
            .with_context(|| format!("dynamic string at offset {offset} is out of range"))?;
        // Most names are short: read a little, and more only when the NUL
        // is not there yet.
        let mut want = 256u64.min(available);
        loop {
            let piece =
                self.src.read_at(start, want as usize).context("reading a dynamic string")?;
            if let Ok(text) = std::ffi::CStr::from_bytes_until_nul(&piece) {
                return text
                    .to_str()
                    .map(str::to_string)
                    .with_context(|| format!("dynamic string at offset {offset} is not UTF-8"));
            }
            ensure!(
                want < available && piece.len() as u64 == want,
                "dynamic string at offset {offset} is not terminated"
            );
            want = (want * 4).min(available);
        }
    }
}

/// The `.note.dlopen` notes, and the GNU notes on the machine the object
/// needs, from the `PT_NOTE` segments (the formats ask for allocated note
/// sections, which the linker puts there). Nothing here fails: a note that
/// cannot be read is a warning on the object.
fn read_notes<S: Source + ?Sized>(src: &S, phdrs: &[ProgramHeader], ctx: Ctx, object: &mut Object) {
    for phdr in phdrs.iter().filter(|p| p.p_type == PT_NOTE) {
        let bytes = match exact(src, phdr.p_offset, phdr.p_filesz, "a PT_NOTE segment") {
            Ok(bytes) => bytes,
            Err(e) => {
                object.warnings.push(format!("{e:#}"));
                continue;
            }
        };
        // Each note is a header of three 4-byte words, then the name and
        // the descriptor, each padded to the segment's alignment (at least 4).
        let alignment = usize::try_from(phdr.p_align).unwrap_or(usize::MAX);
        let notes =
            NoteDataIterator { data: &bytes, size: bytes.len(), offset: 0, ctx: (alignment, ctx) };
        for note in notes {
            match note {
                Ok(note) if note.n_type == NT_FDO_DLOPEN && note.name == FDO_OWNER => {
                    let (entries, warnings) = dlopen_entries(note.desc);
                    object.dlopen.extend(entries);
                    object.warnings.extend(warnings);
                }
                Ok(note) if note.name == "GNU" && note.n_type == NT_GNU_PROPERTY_TYPE_0 => {
                    gnu_notes::read_properties(note.desc, ctx, &mut object.machine);
                }
                Ok(note) if note.name == "GNU" && note.n_type == NT_GNU_ABI_TAG => {
                    gnu_notes::read_abi_tag(note.desc, ctx, &mut object.machine);
                }
                Ok(_) => {}
                // goblin ends the segment's notes at the first it cannot read.
                Err(e) => object.warnings.push(format!("reading a PT_NOTE segment: {e}")),
            }
        }
    }
}

/// The entries of one `.note.dlopen` descriptor: a NUL-terminated JSON array
/// of objects (a single object, as the format's first version had, is taken
/// too). An entry that does not fit the format is left out with a warning;
/// keys the format does not define are ignored, as it asks.
fn dlopen_entries(desc: &[u8]) -> (Vec<DlopenEntry>, Vec<String>) {
    /// `soname` is an array; the format's first version had a string.
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Sonames {
        Many(Vec<String>),
        One(String),
    }
    #[derive(Deserialize)]
    struct Raw {
        soname: Sonames,
        feature: Option<String>,
        description: Option<String>,
        #[serde(default)]
        priority: DlopenPriority,
    }
    let end = desc.iter().position(|&b| b == 0).unwrap_or(desc.len());
    let items = match serde_json::from_slice::<serde_json::Value>(&desc[..end]) {
        Ok(serde_json::Value::Array(items)) => items,
        Ok(object @ serde_json::Value::Object(_)) => vec![object],
        Ok(_) => return (Vec::new(), vec!["`.note.dlopen` is not a JSON array".to_string()]),
        Err(e) => return (Vec::new(), vec![format!("`.note.dlopen` is not valid JSON: {e}")]),
    };
    let mut entries = Vec::new();
    let mut warnings = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let raw = match serde_json::from_value::<Raw>(item) {
            Ok(raw) => raw,
            Err(e) => {
                warnings.push(format!("`.note.dlopen` entry {i}: {e}"));
                continue;
            }
        };
        let sonames = match raw.soname {
            Sonames::Many(names) => names,
            Sonames::One(name) => vec![name],
        };
        if sonames.is_empty() {
            warnings.push(format!("`.note.dlopen` entry {i}: `soname` is empty"));
            continue;
        }
        entries.push(DlopenEntry {
            feature: raw.feature,
            description: raw.description,
            priority: raw.priority,
            sonames,
        });
    }
    (entries, warnings)
}

fn vm_to_offset(phdrs: &[ProgramHeader], addr: u64) -> Option<u64> {
    phdrs
        .iter()
        .filter(|p| p.p_type == PT_LOAD)
        .find(|p| {
            addr >= p.p_vaddr && p.p_vaddr.checked_add(p.p_filesz).is_some_and(|end| addr < end)
        })
        .and_then(|p| (addr - p.p_vaddr).checked_add(p.p_offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sizes and offsets taken from the file are checked, not trusted: a
    /// corrupt header makes the object malformed, never a panic or a huge
    /// allocation.
    #[test]
    fn corrupt_program_headers_are_reported_not_trusted() {
        let good = std::fs::read("/bin/true").unwrap();
        let object = parse(&good);
        assert!(object.malformed.is_none() && object.interp.is_some());
        let phoff = u64::from_le_bytes(good[32..40].try_into().unwrap()) as usize;
        let phnum = u16::from_le_bytes(good[56..58].try_into().unwrap()) as usize;
        for field_offset in [8usize, 32] {
            // p_offset (8) and p_filesz (32) of every program header.
            for value in [u64::MAX, 0x7fff_ffff_ffff, u64::MAX - 16] {
                let mut bad = good.clone();
                for i in 0..phnum {
                    let at = phoff + i * 56 + field_offset;
                    bad[at..at + 8].copy_from_slice(&value.to_le_bytes());
                }
                let object = parse(&bad);
                assert!(object.malformed.is_some(), "offset {field_offset}, value {value:#x}");
            }
        }
        let mut many = good.clone();
        many[56..58].copy_from_slice(&u16::MAX.to_le_bytes());
        assert!(parse(&many).malformed.is_some());
    }

    #[test]
    fn dlopen_notes_are_read_leniently_and_never_fail() {
        let (entries, warnings) = dlopen_entries(
            br#"[{"feature":"xkb","description":"keymaps","priority":"suggested","soname":["libxkbcommon.so.0"]},
                {"soname":["libbpf.so.1","libbpf.so.0"],"future-key":1},
                {"soname":"libold.so.1"},
                {"soname":[]},
                {"soname":["libx.so"],"priority":"important"},
                {"feature":"no soname"}]
            "#,
        );
        let names: Vec<Vec<&str>> =
            entries.iter().map(|e| e.sonames.iter().map(String::as_str).collect()).collect();
        assert_eq!(
            names,
            [vec!["libxkbcommon.so.0"], vec!["libbpf.so.1", "libbpf.so.0"], vec!["libold.so.1"]]
        );
        assert_eq!(entries[0].priority, DlopenPriority::Suggested);
        assert_eq!(entries[0].feature.as_deref(), Some("xkb"));
        assert_eq!(entries[0].description.as_deref(), Some("keymaps"));
        // Without a priority, the format says to assume "recommended".
        assert_eq!(entries[1].priority, DlopenPriority::Recommended);
        assert_eq!(warnings.len(), 3, "{warnings:?}");
        assert!(
            warnings[0].starts_with("`.note.dlopen` entry 3: `soname` is empty"),
            "{warnings:?}"
        );
        assert!(
            warnings[1].contains("entry 4") && warnings[1].contains("important"),
            "{warnings:?}"
        );
        assert!(warnings[2].contains("entry 5") && warnings[2].contains("soname"), "{warnings:?}");

        let (entries, warnings) = dlopen_entries(b"[{\"soname\":[\"liba.so\"]}]\0\0\0");
        assert_eq!((entries.len(), warnings.len()), (1, 0), "padding after the NUL is ignored");
        for bad in [&b"not json"[..], b"42", b"[1]", b"", b"[{\"soname\": 7}]"] {
            let (entries, warnings) = dlopen_entries(bad);
            assert!(entries.is_empty() && warnings.len() == 1, "{bad:?}: {warnings:?}");
        }
    }

    /// What `readelf -V` and `readelf -n` show of the host's libc and of a
    /// program linked against it.
    #[test]
    fn symbol_versions_and_the_abi_tag_are_read() {
        let FileKind::Elf(libc) = read(Path::new("/lib/x86_64-linux-gnu/libc.so.6")).unwrap()
        else {
            panic!("libc.so.6 is not ELF")
        };
        assert!(libc.warnings.is_empty(), "{:?}", libc.warnings);
        assert_eq!(libc.version_defs[0], "libc.so.6", "the base definition names the object");
        for version in ["GLIBC_2.2.5", "GLIBC_2.34", "GLIBC_PRIVATE"] {
            assert!(libc.version_defs.iter().any(|d| d == version), "{:?}", libc.version_defs);
        }
        assert_eq!(libc.machine.abi_tag, Some([3, 2, 0]));
        let FileKind::Elf(tr) = read(Path::new("/usr/bin/true")).unwrap() else {
            panic!("true is not ELF")
        };
        let from_libc = tr.version_needs.iter().find(|n| n.file == "libc.so.6").unwrap();
        assert!(from_libc.versions.iter().any(|v| v.name == "GLIBC_2.34" && !v.weak));
    }

    #[test]
    fn shebang_is_split_like_the_kernel() {
        let s = parse_shebang(b"#! /usr/bin/env  python3 -u \nprint()").unwrap();
        assert_eq!(s.interpreter, "/usr/bin/env");
        assert_eq!(s.arg.as_deref(), Some("python3 -u"));
        let s = parse_shebang(b"#!/bin/sh\n").unwrap();
        assert_eq!(s, Shebang { interpreter: "/bin/sh".into(), arg: None });
        assert_eq!(parse_shebang(b"#!   \n"), None);
    }
}
