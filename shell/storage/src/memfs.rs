//! An in-memory file system that remembers, for every file and directory, what is durable and
//! what was only written, so a test or the simulator can crash it and see what a real disk
//! could have kept.
//!
//! Model:
//! - A file's bytes have a durable version and a current version; every write or `set_len`
//!   since the last `sync_data` is a pending operation, numbered in one fs-wide sequence.
//! - A directory's entries (name -> file) likewise have a durable and a current version;
//!   `create`, `rename` and `remove_file` change only the current one until `sync_dir`. A file
//!   created and synced in a directory that was not synced vanishes on crash; a removed file
//!   whose removal was not synced comes back with its durable bytes.
//! - Directories themselves are durable as soon as `create_dir_all` returns (a simplification:
//!   the engine creates its directory once, before anything else).
//!
//! Deterministic: `BTreeMap`s only, no clock, no randomness. The caller (the simulator, which
//! owns the seeded RNG) chooses what a crash does through [`CrashFault`]. After a crash every
//! handle opened before it fails with an error, so an engine must be dropped and reopened.

use crate::fs::{Fs, FsFile};
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// Files larger than this are refused, so a bogus offset cannot make the model allocate
/// without bound.
const MAX_FILE_LEN: u64 = 1 << 36;

/// What survives a crash of a [`MemFs`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CrashFault {
    /// Power loss: every file reverts to its last synced bytes, every directory to its last
    /// synced entries.
    LoseUnsynced,
    /// Process crash: the kernel keeps everything written, synced or not.
    KeepUnsynced,
    /// Power loss in the middle of the last write: every unsynced operation before it reached
    /// the disk (directory changes too), but of the last write only its first `keep` bytes.
    TornWrite { keep: usize },
    /// Power loss ([`CrashFault::LoseUnsynced`]) and then bit `bit % 8` of the byte at `offset`
    /// of `path` flips (media corruption). No flip if the file or offset does not exist.
    FlipBit { path: PathBuf, offset: u64, bit: u8 },
}

/// A shareable handle to one in-memory file system; clones see the same files.
#[derive(Clone, Default)]
pub struct MemFs {
    state: Arc<Mutex<State>>,
}

/// An open file of a [`MemFs`].
pub struct MemFile {
    fs: MemFs,
    inode: u64,
    /// The fs generation the handle was opened in; a crash bumps it and strands the handle.
    generation: u64,
}

#[derive(Default)]
struct State {
    generation: u64,
    next_inode: u64,
    next_seq: u64,
    inodes: BTreeMap<u64, Inode>,
    dirs: BTreeMap<PathBuf, Dir>,
}

#[derive(Default)]
struct Inode {
    durable: Vec<u8>,
    current: Vec<u8>,
    pending: Vec<Pending>,
    /// Open handles; an unlinked file lives on while one is open, as on POSIX.
    handles: usize,
}

struct Pending {
    seq: u64,
    op: Op,
}

enum Op {
    Write { offset: u64, data: Vec<u8> },
    SetLen(u64),
}

#[derive(Default)]
struct Dir {
    durable: BTreeMap<String, u64>,
    current: BTreeMap<String, u64>,
}

fn apply_write(bytes: &mut Vec<u8>, offset: u64, data: &[u8]) {
    // Offsets were bounded by MAX_FILE_LEN when the operation was accepted.
    let start = offset as usize;
    let end = start + data.len();
    if bytes.len() < end {
        bytes.resize(end, 0);
    }
    bytes[start..end].copy_from_slice(data);
}

impl Op {
    fn apply(&self, bytes: &mut Vec<u8>) {
        match self {
            Op::Write { offset, data } => apply_write(bytes, *offset, data),
            Op::SetLen(len) => bytes.resize(*len as usize, 0),
        }
    }
}

fn split(path: &Path) -> io::Result<(PathBuf, String)> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let parent = path.parent().map(Path::to_path_buf).unwrap_or_default();
    Ok((parent, name.to_string_lossy().into_owned()))
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: no such file", path.display()),
    )
}

fn check_range(offset: u64, len: usize) -> io::Result<()> {
    match offset.checked_add(len as u64) {
        Some(end) if end <= MAX_FILE_LEN => Ok(()),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "MemFs file would exceed 64 GiB",
        )),
    }
}

impl State {
    fn dir(&self, dir: &Path) -> io::Result<&Dir> {
        self.dirs.get(dir).ok_or_else(|| not_found(dir))
    }

    fn dir_mut(&mut self, dir: &Path) -> io::Result<&mut Dir> {
        self.dirs.get_mut(dir).ok_or_else(|| not_found(dir))
    }

    fn lookup(&self, path: &Path) -> io::Result<u64> {
        let (dir, name) = split(path)?;
        self.dir(&dir)?
            .current
            .get(&name)
            .copied()
            .ok_or_else(|| not_found(path))
    }

    fn next_seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    fn push_op(&mut self, inode: u64, op: Op) {
        let seq = self.next_seq();
        let node = self
            .inodes
            .get_mut(&inode)
            .expect("caller checked the inode");
        op.apply(&mut node.current);
        node.pending.push(Pending { seq, op });
    }

    /// Frees a file nobody can reach any more: no directory entry (durable or current) and no
    /// open handle.
    fn collect(&mut self) {
        let mut reachable = std::collections::BTreeSet::new();
        for d in self.dirs.values() {
            reachable.extend(d.durable.values().copied());
            reachable.extend(d.current.values().copied());
        }
        self.inodes
            .retain(|id, node| node.handles > 0 || reachable.contains(id));
    }

    /// Like [`State::collect`] for the one inode whose last handle may just have closed: a
    /// scan of directory entries, without building the whole reachable set.
    fn collect_inode(&mut self, id: u64) {
        let closed = self.inodes.get(&id).is_some_and(|n| n.handles == 0);
        let linked = || {
            self.dirs.values().any(|d| {
                d.durable.values().any(|&i| i == id) || d.current.values().any(|&i| i == id)
            })
        };
        if closed && !linked() {
            self.inodes.remove(&id);
        }
    }

    fn lose_unsynced(&mut self) {
        for d in self.dirs.values_mut() {
            d.current = d.durable.clone();
        }
        for node in self.inodes.values_mut() {
            node.current = node.durable.clone();
            node.pending.clear();
        }
    }

    /// Every pending operation reaches the disk, except that the one numbered `torn.0` keeps
    /// only its first `torn.1` bytes.
    fn persist_all(&mut self, torn: Option<(u64, usize)>) {
        for d in self.dirs.values_mut() {
            d.durable = d.current.clone();
        }
        for node in self.inodes.values_mut() {
            for p in node.pending.drain(..) {
                match (&p.op, torn) {
                    (Op::Write { offset, data }, Some((seq, keep))) if p.seq == seq => {
                        apply_write(&mut node.durable, *offset, &data[..keep.min(data.len())])
                    }
                    (op, _) => op.apply(&mut node.durable),
                }
            }
            node.current = node.durable.clone();
        }
    }

    fn last_pending_write(&self) -> Option<u64> {
        self.inodes
            .values()
            .flat_map(|n| n.pending.iter())
            .filter(|p| matches!(p.op, Op::Write { .. }))
            .map(|p| p.seq)
            .max()
    }

    fn flip_bit(&mut self, path: &Path, offset: u64, bit: u8) -> io::Result<()> {
        let id = self.lookup(path)?;
        let node = self.inodes.get_mut(&id).ok_or_else(|| not_found(path))?;
        let i = usize::try_from(offset)
            .ok()
            .filter(|&i| i < node.current.len())
            .ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, "offset past the end of file")
            })?;
        node.current[i] ^= 1 << (bit % 8);
        if i < node.durable.len() {
            node.durable[i] ^= 1 << (bit % 8);
        }
        Ok(())
    }
}

impl MemFs {
    pub fn new() -> MemFs {
        MemFs::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic in another thread while holding the lock cannot leave the maps half-updated
        // in a way that matters to a test, so keep going rather than cascade the panic.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Crashes the file system as `fault` says. Every handle opened before fails afterwards.
    pub fn crash(&self, fault: CrashFault) {
        let mut s = self.lock();
        match fault {
            CrashFault::LoseUnsynced => s.lose_unsynced(),
            CrashFault::KeepUnsynced => s.persist_all(None),
            CrashFault::TornWrite { keep } => {
                let last = s.last_pending_write();
                s.persist_all(last.map(|seq| (seq, keep)));
            }
            CrashFault::FlipBit { path, offset, bit } => {
                s.lose_unsynced();
                // Documented as a no-op on a missing file or offset.
                let _ = s.flip_bit(&path, offset, bit);
            }
        }
        s.generation += 1;
        for node in s.inodes.values_mut() {
            node.handles = 0;
        }
        s.collect();
    }

    /// Flips bit `bit % 8` of the byte at `offset` of `path`, in both its durable and current
    /// bytes (media corruption, no crash).
    pub fn flip_bit(&self, path: &Path, offset: u64, bit: u8) -> io::Result<()> {
        self.lock().flip_bit(path, offset, bit)
    }

    /// The current bytes of `path`.
    pub fn read_file(&self, path: &Path) -> io::Result<Vec<u8>> {
        let s = self.lock();
        let id = s.lookup(path)?;
        Ok(s.inodes[&id].current.clone())
    }

    /// Creates or replaces `path` with `bytes`, durably (file and directory entry): for
    /// setting up test fixtures.
    pub fn write_file_durably(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        check_range(0, bytes.len())?;
        let mut s = self.lock();
        let (dir, name) = split(path)?;
        s.dir(&dir)?;
        s.next_inode += 1;
        let id = s.next_inode;
        s.inodes.insert(
            id,
            Inode {
                durable: bytes.to_vec(),
                current: bytes.to_vec(),
                ..Inode::default()
            },
        );
        let d = s.dir_mut(&dir)?;
        d.current.insert(name.clone(), id);
        d.durable.insert(name, id);
        s.collect();
        Ok(())
    }

    /// Bytes written but not yet synced, over all files: for simulator statistics.
    pub fn unsynced_bytes(&self) -> u64 {
        let s = self.lock();
        s.inodes
            .values()
            .flat_map(|n| n.pending.iter())
            .map(|p| match &p.op {
                Op::Write { data, .. } => data.len() as u64,
                Op::SetLen(_) => 0,
            })
            .sum()
    }

    fn handle(&self, s: &mut State, inode: u64) -> MemFile {
        if let Some(node) = s.inodes.get_mut(&inode) {
            node.handles += 1;
        }
        MemFile {
            fs: self.clone(),
            inode,
            generation: s.generation,
        }
    }
}

impl Fs for MemFs {
    type File = MemFile;

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.lock();
        for d in dir.ancestors() {
            s.dirs.entry(d.to_path_buf()).or_default();
        }
        Ok(())
    }

    fn create(&self, path: &Path) -> io::Result<MemFile> {
        let mut s = self.lock();
        let (dir, name) = split(path)?;
        if let Some(&id) = s.dir(&dir)?.current.get(&name) {
            s.push_op(id, Op::SetLen(0));
            return Ok(self.handle(&mut s, id));
        }
        s.next_inode += 1;
        let id = s.next_inode;
        s.inodes.insert(id, Inode::default());
        s.dir_mut(&dir)?.current.insert(name, id);
        Ok(self.handle(&mut s, id))
    }

    fn open(&self, path: &Path) -> io::Result<MemFile> {
        let mut s = self.lock();
        let id = s.lookup(path)?;
        Ok(self.handle(&mut s, id))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.lock();
        let id = s.lookup(from)?;
        let (from_dir, from_name) = split(from)?;
        let (to_dir, to_name) = split(to)?;
        s.dir(&to_dir)?;
        s.dir_mut(&from_dir)?.current.remove(&from_name);
        s.dir_mut(&to_dir)?.current.insert(to_name, id);
        s.collect();
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut s = self.lock();
        let (dir, name) = split(path)?;
        if s.dir_mut(&dir)?.current.remove(&name).is_none() {
            return Err(not_found(path));
        }
        s.collect();
        Ok(())
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        Ok(self.lock().dir(dir)?.current.keys().cloned().collect())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.lock();
        let d = s.dir_mut(dir)?;
        d.durable = d.current.clone();
        s.collect();
        Ok(())
    }
}

impl MemFile {
    fn with<T>(&self, f: impl FnOnce(&mut State) -> io::Result<T>) -> io::Result<T> {
        let mut s = self.fs.lock();
        if s.generation != self.generation || !s.inodes.contains_key(&self.inode) {
            return Err(io::Error::other(
                "stale MemFs handle: the file system crashed since it was opened",
            ));
        }
        f(&mut s)
    }
}

impl FsFile for MemFile {
    fn len(&self) -> io::Result<u64> {
        self.with(|s| Ok(s.inodes[&self.inode].current.len() as u64))
    }

    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.with(|s| {
            let bytes = &s.inodes[&self.inode].current;
            let start = usize::try_from(offset).unwrap_or(usize::MAX);
            match start.checked_add(buf.len()) {
                Some(end) if end <= bytes.len() => {
                    buf.copy_from_slice(&bytes[start..end]);
                    Ok(())
                }
                _ => Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "read past the end of file",
                )),
            }
        })
    }

    fn write_all_at(&mut self, offset: u64, buf: &[u8]) -> io::Result<()> {
        check_range(offset, buf.len())?;
        self.with(|s| {
            s.push_op(
                self.inode,
                Op::Write {
                    offset,
                    data: buf.to_vec(),
                },
            );
            Ok(())
        })
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        check_range(len, 0)?;
        self.with(|s| {
            s.push_op(self.inode, Op::SetLen(len));
            Ok(())
        })
    }

    fn sync_data(&self) -> io::Result<()> {
        self.with(|s| {
            let node = s.inodes.get_mut(&self.inode).expect("checked by with");
            for p in node.pending.drain(..) {
                p.op.apply(&mut node.durable);
            }
            Ok(())
        })
    }

    fn try_clone(&self) -> io::Result<MemFile> {
        self.with(|s| Ok(self.fs.handle(s, self.inode)))
    }
}

impl Drop for MemFile {
    fn drop(&mut self) {
        let mut s = self.fs.lock();
        if s.generation != self.generation {
            return;
        }
        if let Some(node) = s.inodes.get_mut(&self.inode) {
            node.handles = node.handles.saturating_sub(1);
        }
        s.collect_inode(self.inode);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fs_with_dir() -> (MemFs, PathBuf) {
        let fs = MemFs::new();
        let dir = PathBuf::from("/d");
        fs.create_dir_all(&dir).unwrap();
        (fs, dir)
    }

    #[test]
    fn lose_unsynced_keeps_only_synced_bytes() {
        let (fs, dir) = fs_with_dir();
        let p = dir.join("f");
        let mut f = fs.create(&p).unwrap();
        fs.sync_dir(&dir).unwrap();
        f.append(b"abc").unwrap();
        f.sync_data().unwrap();
        f.append(b"def").unwrap();
        assert_eq!(fs.read_file(&p).unwrap(), b"abcdef");
        fs.crash(CrashFault::LoseUnsynced);
        assert_eq!(fs.read_file(&p).unwrap(), b"abc");
        // The old handle is stale.
        assert!(f.len().is_err());
    }

    #[test]
    fn keep_unsynced_keeps_everything() {
        let (fs, dir) = fs_with_dir();
        let p = dir.join("f");
        let mut f = fs.create(&p).unwrap();
        f.append(b"abc").unwrap();
        drop(f);
        fs.crash(CrashFault::KeepUnsynced);
        assert_eq!(fs.read_file(&p).unwrap(), b"abc");
    }

    #[test]
    fn torn_write_keeps_earlier_writes_and_a_prefix_of_the_last() {
        let (fs, dir) = fs_with_dir();
        let p = dir.join("f");
        let mut f = fs.create(&p).unwrap();
        fs.sync_dir(&dir).unwrap();
        f.append(b"ab").unwrap();
        f.append(b"cdef").unwrap();
        fs.crash(CrashFault::TornWrite { keep: 1 });
        assert_eq!(fs.read_file(&p).unwrap(), b"abc");
    }

    #[test]
    fn unsynced_directory_entry_vanishes() {
        let (fs, dir) = fs_with_dir();
        let p = dir.join("f");
        let mut f = fs.create(&p).unwrap();
        f.append(b"abc").unwrap();
        f.sync_data().unwrap();
        fs.crash(CrashFault::LoseUnsynced);
        assert_eq!(fs.list_dir(&dir).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn unsynced_removal_and_rename_come_undone() {
        let (fs, dir) = fs_with_dir();
        let a = dir.join("a");
        let b = dir.join("b");
        let mut f = fs.create(&a).unwrap();
        f.append(b"1").unwrap();
        f.sync_data().unwrap();
        drop(f);
        fs.sync_dir(&dir).unwrap();
        fs.rename(&a, &b).unwrap();
        assert_eq!(fs.list_dir(&dir).unwrap(), vec!["b".to_string()]);
        fs.crash(CrashFault::LoseUnsynced);
        assert_eq!(fs.list_dir(&dir).unwrap(), vec!["a".to_string()]);
        fs.remove_file(&a).unwrap();
        fs.crash(CrashFault::LoseUnsynced);
        assert_eq!(fs.read_file(&a).unwrap(), b"1");
        fs.remove_file(&a).unwrap();
        fs.sync_dir(&dir).unwrap();
        fs.crash(CrashFault::LoseUnsynced);
        assert!(fs.list_dir(&dir).unwrap().is_empty());
    }

    #[test]
    fn removed_file_stays_usable_through_an_open_handle() {
        let (fs, dir) = fs_with_dir();
        let p = dir.join("f");
        let mut f = fs.create(&p).unwrap();
        fs.remove_file(&p).unwrap();
        f.append(b"x").unwrap();
        f.sync_data().unwrap();
        assert_eq!(f.len().unwrap(), 1);
    }

    #[test]
    fn flip_bit_damages_durable_bytes() {
        let (fs, dir) = fs_with_dir();
        let p = dir.join("f");
        fs.write_file_durably(&p, &[0, 0]).unwrap();
        fs.crash(CrashFault::FlipBit {
            path: p.clone(),
            offset: 1,
            bit: 3,
        });
        assert_eq!(fs.read_file(&p).unwrap(), vec![0, 8]);
        // Out of range: a no-op, not a panic.
        fs.crash(CrashFault::FlipBit {
            path: p.clone(),
            offset: 99,
            bit: 0,
        });
        assert!(fs.flip_bit(&p, 99, 0).is_err());
    }

    #[test]
    fn set_len_is_pending_until_sync() {
        let (fs, dir) = fs_with_dir();
        let p = dir.join("f");
        fs.write_file_durably(&p, b"abcdef").unwrap();
        let mut f = fs.open(&p).unwrap();
        f.set_len(2).unwrap();
        assert_eq!(fs.unsynced_bytes(), 0);
        fs.crash(CrashFault::LoseUnsynced);
        assert_eq!(fs.read_file(&p).unwrap(), b"abcdef");
        let mut f = fs.open(&p).unwrap();
        f.set_len(2).unwrap();
        f.sync_data().unwrap();
        fs.crash(CrashFault::LoseUnsynced);
        assert_eq!(fs.read_file(&p).unwrap(), b"ab");
    }
}
