//! A FUSE filesystem for power-cut tests: it keeps what is written in a
//! volatile layer until it is synced, and can "lose power" at any sync.
//!
//! SIGKILL never tests "on disk": the kernel's page cache survives the process,
//! so a missing fsync cannot fail a kill test. Here (the LazyFS / ALICE idea) the
//! filesystem holds two images of the tree:
//! - `live`: what processes see (every write, create, rename, unlink);
//! - `durable`: what would survive a power cut. `fsync`/`fdatasync` of a file
//!   copies that file's bytes and mode into it; `fsync` of a directory copies
//!   that directory's entries (a child never synced itself arrives empty — the
//!   name survived, the data did not, as ext4 can leave it).
//!
//! With `crash_at = Some(k)`, the durable image right after the k-th sync (of
//! any file or directory) is kept as the power-cut image, and from then on every
//! operation fails with `EIO`: the machine is dead, nothing more reaches the
//! disk. The test then mounts that image alone and checks every promise.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use fuser::{
    Config, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo,
    LockOwner, MountOption, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyWrite, Request, TimeOrNow, WriteFlags,
};

const TTL: Duration = Duration::from_secs(0);

#[derive(Clone, Debug)]
enum Body {
    File(Vec<u8>),
    Dir(BTreeMap<OsString, u64>),
}

#[derive(Clone, Debug)]
struct Node {
    body: Body,
    perm: u16,
}

/// One image of the tree: inodes by number; 1 is the root.
#[derive(Clone, Debug)]
pub struct Image {
    nodes: HashMap<u64, Node>,
}

impl Default for Image {
    fn default() -> Self {
        let root = Node {
            body: Body::Dir(BTreeMap::new()),
            perm: 0o755,
        };
        Image {
            nodes: HashMap::from([(1, root)]),
        }
    }
}

impl Image {
    /// The image with only what is reachable from the root (what a remount sees).
    fn reachable(&self) -> Image {
        let mut out = HashMap::new();
        let mut stack = vec![1u64];
        while let Some(ino) = stack.pop() {
            let Some(node) = self.nodes.get(&ino) else {
                continue;
            };
            if out.insert(ino, node.clone()).is_some() {
                continue;
            }
            if let Body::Dir(entries) = &node.body {
                stack.extend(entries.values().copied());
            }
        }
        Image { nodes: out }
    }
}

struct State {
    live: Image,
    durable: Image,
    next_ino: u64,
    syncs: u64,
    crash_at: Option<u64>,
    crashed: Option<Image>,
}

/// The shared handle on a mounted filesystem's state.
#[derive(Clone)]
pub struct CrashFs {
    state: Arc<Mutex<State>>,
}

/// A mounted `CrashFs`; unmounted when dropped.
pub struct Mounted {
    pub fs: CrashFs,
    _session: fuser::BackgroundSession,
}

impl CrashFs {
    /// A filesystem whose live and durable images are both `image`, losing
    /// power at the `crash_at`-th sync when given.
    pub fn new(image: Image, crash_at: Option<u64>) -> CrashFs {
        let next_ino = image.nodes.keys().max().copied().unwrap_or(1) + 1;
        CrashFs {
            state: Arc::new(Mutex::new(State {
                live: image.clone(),
                durable: image,
                next_ino,
                syncs: 0,
                crash_at,
                crashed: None,
            })),
        }
    }

    /// Mounts it at `dir`.
    pub fn mount(self, dir: &Path) -> std::io::Result<Mounted> {
        let mut config = Config::default();
        config.mount_options = vec![
            MountOption::FSName("crashfs".into()),
            MountOption::Subtype("crashfs".into()),
        ];
        let session = fuser::spawn_mount(self.clone(), dir, &config)?;
        Ok(Mounted {
            fs: self,
            _session: session,
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Syncs seen so far (files and directories).
    pub fn syncs(&self) -> u64 {
        self.state().syncs
    }

    /// Everything live becomes durable (to prepare a starting image).
    pub fn settle(&self) -> Image {
        let mut s = self.state();
        s.durable = s.live.clone();
        s.durable.reachable()
    }

    /// The image a power cut at `crash_at` left, if it came.
    pub fn crashed(&self) -> Option<Image> {
        self.state().crashed.as_ref().map(Image::reachable)
    }

    /// Whether the power is out (every operation then fails with `EIO`).
    fn dead(&self) -> bool {
        self.state().crashed.is_some()
    }

    fn after_sync(s: &mut State) {
        s.syncs += 1;
        if s.crash_at == Some(s.syncs) {
            s.crashed = Some(s.durable.clone());
        }
    }
}

fn attr(ino: u64, node: &Node) -> FileAttr {
    let (kind, size) = match &node.body {
        Body::File(data) => (FileType::RegularFile, data.len() as u64),
        Body::Dir(_) => (FileType::Directory, 0),
    };
    FileAttr {
        ino: INodeNo(ino),
        size,
        blocks: size.div_ceil(512),
        atime: SystemTime::UNIX_EPOCH,
        mtime: SystemTime::UNIX_EPOCH,
        ctime: SystemTime::UNIX_EPOCH,
        crtime: SystemTime::UNIX_EPOCH,
        kind,
        perm: node.perm,
        nlink: 1,
        uid: 0,
        gid: 0,
        rdev: 0,
        blksize: 4096,
        flags: 0,
    }
}

fn entries_of(image: &mut Image, ino: u64) -> Result<&mut BTreeMap<OsString, u64>, Errno> {
    match image.nodes.get_mut(&ino).map(|n| &mut n.body) {
        Some(Body::Dir(entries)) => Ok(entries),
        Some(Body::File(_)) => Err(Errno::ENOTDIR),
        None => Err(Errno::ENOENT),
    }
}

fn data_of(image: &mut Image, ino: u64) -> Result<&mut Vec<u8>, Errno> {
    match image.nodes.get_mut(&ino).map(|n| &mut n.body) {
        Some(Body::File(data)) => Ok(data),
        Some(Body::Dir(_)) => Err(Errno::EISDIR),
        None => Err(Errno::ENOENT),
    }
}

impl CrashFs {
    fn make(&self, parent: u64, name: &OsStr, body: Body, mode: u32) -> Result<FileAttr, Errno> {
        let mut s = self.state();
        let ino = s.next_ino;
        let entries = entries_of(&mut s.live, parent)?;
        if entries.contains_key(name) {
            return Err(Errno::EEXIST);
        }
        entries.insert(name.to_owned(), ino);
        let node = Node {
            body,
            perm: (mode & 0o7777) as u16,
        };
        let a = attr(ino, &node);
        s.live.nodes.insert(ino, node);
        s.next_ino += 1;
        Ok(a)
    }
}

impl Filesystem for CrashFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        if self.dead() {
            return reply.error(Errno::EIO);
        }
        let mut s = self.state();
        let found = entries_of(&mut s.live, parent.0)
            .and_then(|e| e.get(name).copied().ok_or(Errno::ENOENT));
        match found {
            Ok(ino) => match s.live.nodes.get(&ino) {
                Some(node) => reply.entry(&TTL, &attr(ino, node), Generation(0)),
                None => reply.error(Errno::ENOENT),
            },
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        if self.dead() {
            return reply.error(Errno::EIO);
        }
        let s = self.state();
        match s.live.nodes.get(&ino.0) {
            Some(node) => reply.attr(&TTL, &attr(ino.0, node)),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        if self.dead() {
            return reply.error(Errno::EIO);
        }
        let mut s = self.state();
        if let Some(size) = size {
            match data_of(&mut s.live, ino.0) {
                Ok(data) => data.resize(size as usize, 0),
                Err(e) => return reply.error(e),
            }
        }
        match s.live.nodes.get_mut(&ino.0) {
            Some(node) => {
                if let Some(mode) = mode {
                    node.perm = (mode & 0o7777) as u16;
                }
                reply.attr(&TTL, &attr(ino.0, node));
            }
            None => reply.error(Errno::ENOENT),
        }
    }

    fn mknod(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        if self.dead() {
            return reply.error(Errno::EIO);
        }
        if mode & nix::libc::S_IFMT != nix::libc::S_IFREG {
            return reply.error(Errno::EPERM);
        }
        match self.make(parent.0, name, Body::File(Vec::new()), mode & !umask) {
            Ok(a) => reply.entry(&TTL, &a, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        if self.dead() {
            return reply.error(Errno::EIO);
        }
        match self.make(parent.0, name, Body::Dir(BTreeMap::new()), mode & !umask) {
            Ok(a) => reply.entry(&TTL, &a, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        if self.dead() {
            return reply.error(Errno::EIO);
        }
        match self.make(parent.0, name, Body::File(Vec::new()), mode & !umask) {
            Ok(a) => reply.created(&TTL, &a, Generation(0), FileHandle(0), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        if self.dead() {
            return reply.error(Errno::EIO);
        }
        let mut s = self.state();
        match entries_of(&mut s.live, parent.0) {
            Ok(entries) => match entries.remove(name) {
                Some(_) => reply.ok(),
                None => reply.error(Errno::ENOENT),
            },
            Err(e) => reply.error(e),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        if self.dead() {
            return reply.error(Errno::EIO);
        }
        let mut s = self.state();
        let Ok(Some(ino)) = entries_of(&mut s.live, parent.0).map(|e| e.get(name).copied()) else {
            return reply.error(Errno::ENOENT);
        };
        match entries_of(&mut s.live, ino) {
            Ok(children) if !children.is_empty() => return reply.error(Errno::ENOTEMPTY),
            Ok(_) => {}
            Err(e) => return reply.error(e),
        }
        if let Ok(entries) = entries_of(&mut s.live, parent.0) {
            entries.remove(name);
        }
        reply.ok();
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        if self.dead() {
            return reply.error(Errno::EIO);
        }
        let mut s = self.state();
        let Ok(Some(ino)) = entries_of(&mut s.live, parent.0).map(|e| e.get(name).copied()) else {
            return reply.error(Errno::ENOENT);
        };
        match entries_of(&mut s.live, newparent.0) {
            Ok(target) => {
                if flags.contains(RenameFlags::RENAME_NOREPLACE) && target.contains_key(newname) {
                    return reply.error(Errno::EEXIST);
                }
                target.insert(newname.to_owned(), ino);
            }
            Err(e) => return reply.error(e),
        }
        if (parent, name) != (newparent, newname)
            && let Ok(entries) = entries_of(&mut s.live, parent.0)
        {
            entries.remove(name);
        }
        reply.ok();
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        if self.dead() {
            return reply.error(Errno::EIO);
        }
        let mut s = self.state();
        match entries_of(&mut s.live, newparent.0) {
            Ok(entries) if entries.contains_key(newname) => return reply.error(Errno::EEXIST),
            Ok(entries) => {
                entries.insert(newname.to_owned(), ino.0);
            }
            Err(e) => return reply.error(e),
        }
        match s.live.nodes.get(&ino.0) {
            Some(node) => reply.entry(&TTL, &attr(ino.0, node), Generation(0)),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn open(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        if self.dead() {
            return reply.error(Errno::EIO);
        }
        // No page cache between opens: every read comes here.
        reply.opened(FileHandle(0), FopenFlags::FOPEN_DIRECT_IO);
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        if self.dead() {
            return reply.error(Errno::EIO);
        }
        let mut s = self.state();
        match data_of(&mut s.live, ino.0) {
            Ok(data) => {
                let start = (offset as usize).min(data.len());
                let end = (start + size as usize).min(data.len());
                reply.data(&data[start..end]);
            }
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        bytes: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        if self.dead() {
            return reply.error(Errno::EIO);
        }
        let mut s = self.state();
        match data_of(&mut s.live, ino.0) {
            Ok(data) => {
                let end = offset as usize + bytes.len();
                if data.len() < end {
                    data.resize(end, 0);
                }
                data[offset as usize..end].copy_from_slice(bytes);
                reply.written(bytes.len() as u32);
            }
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        if self.dead() {
            return reply.error(Errno::EIO);
        }
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        if self.dead() {
            return reply.error(Errno::EIO);
        }
        let mut s = self.state();
        let Some(node) = s.live.nodes.get(&ino.0).cloned() else {
            return reply.error(Errno::ENOENT);
        };
        match (&node.body, s.durable.nodes.get_mut(&ino.0)) {
            // A directory's entries are made durable by fsyncdir only.
            (Body::Dir(_), Some(old)) => old.perm = node.perm,
            (Body::Dir(_), None) => {
                let empty = Node {
                    body: Body::Dir(BTreeMap::new()),
                    perm: node.perm,
                };
                s.durable.nodes.insert(ino.0, empty);
            }
            (Body::File(_), _) => {
                s.durable.nodes.insert(ino.0, node);
            }
        }
        CrashFs::after_sync(&mut s);
        reply.ok();
    }

    fn opendir(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        if self.dead() {
            return reply.error(Errno::EIO);
        }
        reply.opened(FileHandle(0), FopenFlags::empty());
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        if self.dead() {
            return reply.error(Errno::EIO);
        }
        let mut s = self.state();
        let entries: Vec<(OsString, u64)> = match entries_of(&mut s.live, ino.0) {
            Ok(e) => e.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            Err(e) => return reply.error(e),
        };
        let mut all = vec![
            (OsString::from("."), ino.0, FileType::Directory),
            (OsString::from(".."), 1, FileType::Directory),
        ];
        for (name, child) in entries {
            let kind = match s.live.nodes.get(&child).map(|n| &n.body) {
                Some(Body::Dir(_)) => FileType::Directory,
                _ => FileType::RegularFile,
            };
            all.push((name, child, kind));
        }
        for (i, (name, child, kind)) in all.into_iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(child), i as u64 + 1, kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        if self.dead() {
            return reply.error(Errno::EIO);
        }
        let mut s = self.state();
        let entries = match s.live.nodes.get(&ino.0).map(|n| (&n.body, n.perm)) {
            Some((Body::Dir(entries), perm)) => (entries.clone(), perm),
            _ => return reply.error(Errno::ENOTDIR),
        };
        for child in entries.0.values() {
            if s.durable.nodes.contains_key(child) {
                continue;
            }
            // The name is durable now; the child's content only if it was synced.
            let fresh = match s.live.nodes.get(child).map(|n| (&n.body, n.perm)) {
                Some((Body::Dir(_), perm)) => Node {
                    body: Body::Dir(BTreeMap::new()),
                    perm,
                },
                Some((Body::File(_), perm)) => Node {
                    body: Body::File(Vec::new()),
                    perm,
                },
                None => continue,
            };
            s.durable.nodes.insert(*child, fresh);
        }
        s.durable.nodes.insert(
            ino.0,
            Node {
                body: Body::Dir(entries.0),
                perm: entries.1,
            },
        );
        CrashFs::after_sync(&mut s);
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: fuser::ReplyStatfs) {
        reply.statfs(1 << 24, 1 << 24, 1 << 24, 1 << 20, 1 << 20, 4096, 255, 4096);
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        reply.ok();
    }
}
