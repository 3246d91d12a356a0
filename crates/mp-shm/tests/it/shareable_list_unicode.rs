//! Non-ASCII strings in a `ShareableList`, both ways with Python. CPython sizes a new list's
//! str slot by characters (`8 * (len(s) // 8 + 1)`) and then stores the UTF-8 bytes, silently
//! cutting what does not fit (possibly mid-character); mp sizes it by UTF-8 bytes, so nothing
//! is cut. Each side reads the other's list as its maker wrote it. Skipped (with the reason
//! printed) where python3 is missing.

use crate::common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};

use common::{python, run_python};
use mp_shm::{Item, ListError, ShareableList, SharedMemory};

/// Unlinks the named segment when dropped, on every path out of a test (a failed assertion
/// too); a segment already unlinked is fine.
struct Unlink(String);

impl Drop for Unlink {
    fn drop(&mut self) {
        if let Ok(shm) = SharedMemory::attach(&self.0) {
            let _ = shm.unlink();
        }
    }
}

/// Kills and reaps a child process when dropped, unless it has been waited for.
struct Reap(Child);

impl Drop for Reap {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Seven characters, fourteen UTF-8 bytes: CPython would give it an 8-byte slot.
const WIDE: &str = "ééééééé";

#[test]
fn python_reads_our_non_ascii_str_whole() {
    let Some(py) = python() else { return };
    let list = ShareableList::new(&["héllo".into(), WIDE.into()]).unwrap();
    let _unlink = Unlink(list.shm().name().to_owned());
    // Our slots: by bytes (6 -> 8, 14 -> 16); CPython's would be 8s8s.
    assert_eq!(list.format().unwrap(), "8s16s");
    // Python 3.11/3.12 register segments they attach; unregister so its exit leaves ours.
    let script = "
import sys
from multiprocessing import shared_memory, resource_tracker
l = shared_memory.ShareableList(name=sys.argv[1])
resource_tracker.unregister(l.shm._name, 'shared_memory')
print(l.format, l[0], l[1], flush=True)
l[0] = 'ñ' * 4
l.shm.close()
";
    let out = run_python(py, script, list.shm().name());
    assert_eq!(out, format!("8s16s héllo {WIDE}"));
    // Python's write (4 characters, 8 bytes: fits the 8-byte slot) reads back here.
    assert_eq!(list.get(0).unwrap(), Item::Str("ññññ".into()));
    assert_eq!(list.get(1).unwrap(), Item::Str(WIDE.into()));
    list.shm().unlink().unwrap();
}

#[test]
fn we_read_pythons_non_ascii_list_as_python_does() {
    let Some(py) = python() else { return };
    // Python makes the list, prints its name, and waits for us before it unlinks it.
    let script = "
from multiprocessing import shared_memory
l = shared_memory.ShareableList(['héllo', 'ééééééé', 'aéééééé'])
print(l.shm.name, l.format, repr(l[1]), flush=True)
try:
    l[2]
except UnicodeDecodeError:
    print('undecodable', flush=True)
input()
l.shm.close(); l.shm.unlink()
";
    let mut child = Reap(
        Command::new(py)
            .args(["-c", script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let mut words = first.split(' ');
    let name = words.next().unwrap().to_owned();
    let _unlink = Unlink(name.clone());
    // CPython sized by characters and cut the second item to its 8 bytes...
    assert_eq!(words.collect::<Vec<_>>(), ["8s8s8s", "'éééé'"]);
    // ...and the third mid-character.
    assert_eq!(lines.next().unwrap().unwrap(), "undecodable");
    let list = ShareableList::attach(&name).unwrap();
    assert_eq!(list.format().unwrap(), "8s8s8s");
    assert_eq!(list.get(0).unwrap(), Item::Str("héllo".into()));
    assert_eq!(list.get(1).unwrap(), Item::Str("éééé".into()));
    // Where Python raises UnicodeDecodeError, a typed error.
    assert!(matches!(list.get(2), Err(ListError::Malformed(_))));
    // Our writes keep to the slot's bytes (as Python's own writes do): 8 bytes fit, 10 do not.
    list.set(1, "ññññ".into()).unwrap();
    assert_eq!(list.get(1).unwrap(), Item::Str("ññññ".into()));
    assert!(matches!(
        list.set(1, "ñññññ".into()),
        Err(ListError::ItemTooLong {
            len: 10,
            capacity: 8
        })
    ));
    drop(list);
    child.0.stdin.as_mut().unwrap().write_all(b"\n").unwrap();
    assert!(child.0.wait().unwrap().success());
}
