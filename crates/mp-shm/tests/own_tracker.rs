//! A `ResourceTracker` of one's own: the segments registered with it are unlinked when its
//! holder drops it or dies, even by SIGKILL, and not before; under all three start methods
//! (the holder is a child started by each).

use std::os::fd::AsFd;
use std::path::Path;
use std::time::Duration;

use mp_shm::{Event, RawArray, RawValue, ResourceTracker, SharedMemory};
use mp_spawn::StartMethod;
use mp_spawn::testing::{adopt_orphans, ctx, park_forever, wait_gone, wait_pidfd};

mp_spawn::test_matrix!(a_killed_holders_segments_are_unlinked);

/// A hang guard only: every wait below is on an event.
const LONG: Duration = Duration::from_secs(60);

fn exists(name: &str) -> bool {
    Path::new("/dev/shm").join(name).exists()
}

/// Starts a tracker, makes two untracked segments it registers (one then unregistered and
/// unlinked by hand), reports them, and parks until killed.
fn hold_a_tracker(name: RawArray<u8>, pid: RawValue<u32>, ready: Event) {
    let tracker = ResourceTracker::start().unwrap();
    let kept = SharedMemory::options().track(false).create(64).unwrap();
    tracker.register(kept.name()).unwrap();
    let forgotten = SharedMemory::options().track(false).create(64).unwrap();
    tracker.register(forgotten.name()).unwrap();
    forgotten.unlink().unwrap();
    tracker.unregister(forgotten.name()).unwrap();
    for (i, b) in kept.name().bytes().enumerate() {
        name.set(i, b).unwrap();
    }
    pid.set(tracker.pid());
    ready.set();
    park_forever();
}

fn a_killed_holders_segments_are_unlinked(m: StartMethod) {
    adopt_orphans();
    // What the holder reports: its kept segment's name (NUL-padded) and its tracker's pid.
    let (name, tracker, ready) = (
        RawArray::<u8>::zeroed(64).unwrap(),
        RawValue::new(0u32).unwrap(),
        Event::new().unwrap(),
    );
    let args = (name.clone(), tracker.clone(), ready.clone());
    let mut holder = ctx(m).process(hold_a_tracker, args);
    holder.start().unwrap();
    assert!(ready.wait(Some(LONG)), "the holder never reported");
    let name: Vec<u8> = name.to_vec().into_iter().take_while(|b| *b != 0).collect();
    let name = String::from_utf8(name).unwrap();
    let tracker = tracker.get();
    // Opened while the tracker surely lives (its holder parks): it names the tracker.
    let tracker_fd = mp_sys::pidfd::open(tracker).unwrap();
    assert!(exists(&name));
    holder.kill().unwrap();
    holder.join().unwrap_err();
    wait_pidfd(tracker_fd.as_fd());
    assert!(!exists(&name), "{name} leaked after its holder's SIGKILL");
    // Ours since its holder died.
    wait_gone(tracker);
}

/// Dropping the handle unlinks what is registered, and returns only once that is done.
#[test]
fn dropping_the_tracker_unlinks_its_segments() {
    let tracker = ResourceTracker::start().unwrap();
    let shm = SharedMemory::options().track(false).create(64).unwrap();
    tracker.register(shm.name()).unwrap();
    let name = shm.name().to_owned();
    drop(shm);
    assert!(exists(&name));
    let pid = tracker.pid();
    drop(tracker);
    assert!(!exists(&name));
    // Reaped by the drop.
    assert!(mp_sys::pidfd::open(pid).is_err());
}
