//! A SQLite VFS for tests that simulates power loss: it passes everything to the default VFS and
//! keeps, for each file, a copy of its contents as of its last sync. [`survivors`] writes those
//! copies into a fresh directory: what a disk would hold after the power went out right now,
//! with nothing closed cleanly.

use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, Once};

use rusqlite::ffi;

/// Name to open a database with.
pub const VFS: &str = "tg-ingest-powerloss";

/// Each opened file's contents at its last sync (`None`: opened, never synced).
static SYNCED: Mutex<Option<HashMap<PathBuf, Option<Vec<u8>>>>> = Mutex::new(None);
static REGISTER: Once = Once::new();
static mut INNER: *mut ffi::sqlite3_vfs = std::ptr::null_mut();
static mut METHODS: Option<ffi::sqlite3_io_methods> = None;

/// One open file: ours first (SQLite sees its `pMethods`), the default VFS's right after.
#[repr(C)]
struct File {
    base: ffi::sqlite3_file,
    inner: *mut ffi::sqlite3_file,
    path: *mut PathBuf,
}

fn synced() -> std::sync::MutexGuard<'static, Option<HashMap<PathBuf, Option<Vec<u8>>>>> {
    SYNCED.lock().unwrap_or_else(|e| e.into_inner())
}

/// Registers the VFS (once per process).
pub fn register() {
    REGISTER.call_once(|| unsafe {
        let inner = ffi::sqlite3_vfs_find(std::ptr::null());
        assert!(!inner.is_null(), "no default VFS");
        INNER = inner;
        let mut vfs = *inner;
        vfs.szOsFile = (std::mem::size_of::<File>() + (*inner).szOsFile as usize) as c_int;
        vfs.zName = c"tg-ingest-powerloss".as_ptr();
        vfs.pNext = std::ptr::null_mut();
        vfs.xOpen = Some(open);
        vfs.xDelete = Some(delete);
        assert_eq!(
            ffi::sqlite3_vfs_register(Box::leak(Box::new(vfs)), 0),
            ffi::SQLITE_OK
        );
    });
}

/// Writes the last synced contents of the files opened under `dir` into `to`, by file name.
pub fn survivors(dir: &Path, to: &Path) {
    let guard = synced();
    for (path, contents) in guard.iter().flat_map(|m| m.iter()) {
        if let (true, Some(contents), Some(name)) =
            (path.starts_with(dir), contents, path.file_name())
        {
            std::fs::write(to.join(name), contents).unwrap();
        }
    }
}

unsafe extern "C" fn delete(
    _vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    sync_dir: c_int,
) -> c_int {
    let rc = ((*INNER).xDelete.unwrap())(INNER, name, sync_dir);
    if rc == ffi::SQLITE_OK && !name.is_null() {
        let path = PathBuf::from(CStr::from_ptr(name).to_string_lossy().as_ref());
        if let Some(map) = synced().as_mut() {
            map.remove(&path);
        }
    }
    rc
}

unsafe fn inner_of(file: *mut ffi::sqlite3_file) -> *mut ffi::sqlite3_file {
    (*(file as *mut File)).inner
}

unsafe fn methods_of(file: *mut ffi::sqlite3_file) -> &'static ffi::sqlite3_io_methods {
    &*(*inner_of(file)).pMethods
}

unsafe extern "C" fn open(
    _vfs: *mut ffi::sqlite3_vfs,
    name: ffi::sqlite3_filename,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    let ours = file as *mut File;
    let inner = (file as *mut u8).add(std::mem::size_of::<File>()) as *mut ffi::sqlite3_file;
    let rc = ((*INNER).xOpen.unwrap())(INNER, name, inner, flags, out_flags);
    if rc != ffi::SQLITE_OK || (*inner).pMethods.is_null() {
        (*ours).base.pMethods = std::ptr::null();
        return rc;
    }
    let path = (!name.is_null()).then(|| {
        PathBuf::from(
            CStr::from_ptr(name as *const c_char)
                .to_string_lossy()
                .as_ref(),
        )
    });
    if let Some(path) = &path {
        synced()
            .get_or_insert_with(HashMap::new)
            .entry(path.clone())
            .or_insert(None);
    }
    (*ours).inner = inner;
    (*ours).path = path.map_or(std::ptr::null_mut(), |p| Box::into_raw(Box::new(p)));
    let methods = &mut *std::ptr::addr_of_mut!(METHODS);
    let methods = methods.get_or_insert_with(|| {
        let mut m = *(*inner).pMethods;
        m.iVersion = m.iVersion.min(2);
        m.xClose = Some(close);
        m.xRead = Some(read);
        m.xWrite = Some(write);
        m.xTruncate = Some(truncate);
        m.xSync = Some(sync);
        m.xFileSize = Some(file_size);
        m.xLock = Some(lock);
        m.xUnlock = Some(unlock);
        m.xCheckReservedLock = Some(check_reserved_lock);
        m.xFileControl = Some(file_control);
        m.xSectorSize = Some(sector_size);
        m.xDeviceCharacteristics = Some(device_characteristics);
        m.xShmMap = Some(shm_map);
        m.xShmLock = Some(shm_lock);
        m.xShmBarrier = Some(shm_barrier);
        m.xShmUnmap = Some(shm_unmap);
        m.xFetch = None;
        m.xUnfetch = None;
        m
    });
    (*ours).base.pMethods = methods;
    rc
}

unsafe extern "C" fn close(file: *mut ffi::sqlite3_file) -> c_int {
    let ours = file as *mut File;
    if !(*ours).path.is_null() {
        drop(Box::from_raw((*ours).path));
        (*ours).path = std::ptr::null_mut();
    }
    (methods_of(file).xClose.unwrap())(inner_of(file))
}

unsafe extern "C" fn sync(file: *mut ffi::sqlite3_file, flags: c_int) -> c_int {
    let rc = (methods_of(file).xSync.unwrap())(inner_of(file), flags);
    let path = (*(file as *mut File)).path;
    if rc == ffi::SQLITE_OK && !path.is_null() {
        let contents = std::fs::read(&*path).unwrap_or_default();
        synced()
            .get_or_insert_with(HashMap::new)
            .insert((*path).clone(), Some(contents));
    }
    rc
}

unsafe extern "C" fn read(f: *mut ffi::sqlite3_file, b: *mut c_void, n: c_int, o: i64) -> c_int {
    (methods_of(f).xRead.unwrap())(inner_of(f), b, n, o)
}

unsafe extern "C" fn write(f: *mut ffi::sqlite3_file, b: *const c_void, n: c_int, o: i64) -> c_int {
    (methods_of(f).xWrite.unwrap())(inner_of(f), b, n, o)
}

unsafe extern "C" fn truncate(f: *mut ffi::sqlite3_file, size: i64) -> c_int {
    (methods_of(f).xTruncate.unwrap())(inner_of(f), size)
}

unsafe extern "C" fn file_size(f: *mut ffi::sqlite3_file, size: *mut i64) -> c_int {
    (methods_of(f).xFileSize.unwrap())(inner_of(f), size)
}

unsafe extern "C" fn lock(f: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    (methods_of(f).xLock.unwrap())(inner_of(f), level)
}

unsafe extern "C" fn unlock(f: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    (methods_of(f).xUnlock.unwrap())(inner_of(f), level)
}

unsafe extern "C" fn check_reserved_lock(f: *mut ffi::sqlite3_file, out: *mut c_int) -> c_int {
    (methods_of(f).xCheckReservedLock.unwrap())(inner_of(f), out)
}

unsafe extern "C" fn file_control(f: *mut ffi::sqlite3_file, op: c_int, arg: *mut c_void) -> c_int {
    (methods_of(f).xFileControl.unwrap())(inner_of(f), op, arg)
}

unsafe extern "C" fn sector_size(f: *mut ffi::sqlite3_file) -> c_int {
    (methods_of(f).xSectorSize.unwrap())(inner_of(f))
}

unsafe extern "C" fn device_characteristics(f: *mut ffi::sqlite3_file) -> c_int {
    (methods_of(f).xDeviceCharacteristics.unwrap())(inner_of(f))
}

unsafe extern "C" fn shm_map(
    f: *mut ffi::sqlite3_file,
    region: c_int,
    size: c_int,
    extend: c_int,
    out: *mut *mut c_void,
) -> c_int {
    (methods_of(f).xShmMap.unwrap())(inner_of(f), region, size, extend, out)
}

unsafe extern "C" fn shm_lock(
    f: *mut ffi::sqlite3_file,
    at: c_int,
    n: c_int,
    flags: c_int,
) -> c_int {
    (methods_of(f).xShmLock.unwrap())(inner_of(f), at, n, flags)
}

unsafe extern "C" fn shm_barrier(f: *mut ffi::sqlite3_file) {
    (methods_of(f).xShmBarrier.unwrap())(inner_of(f))
}

unsafe extern "C" fn shm_unmap(f: *mut ffi::sqlite3_file, delete: c_int) -> c_int {
    (methods_of(f).xShmUnmap.unwrap())(inner_of(f), delete)
}
