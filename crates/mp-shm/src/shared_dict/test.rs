//! Unit tests of the table's checks: garbage in the control word or the region header gives
//! `Corrupt`, never an access outside the mapping.

use super::*;

#[test]
fn control_words_out_of_range_are_refused() {
    let d = SharedDict::<u32, u32>::new().unwrap();
    d.insert(1, 2).unwrap();
    let s = &*d.shared;
    let good = s.control().region.load(Relaxed);
    for bad in [
        0,                                           // size 1: below the minimum
        MAX_LOG + 1,                                 // too large
        (RESERVE - (1 << MIN_LOG) + 4096) | MIN_LOG, // runs past the reserve
        RESERVE | MIN_LOG,                           // starts past it
        u64::MAX,
    ] {
        s.control().region.store(bad, Relaxed);
        assert!(matches!(d.get(&1), Err(DictError::Corrupt(_))), "{bad:#x}");
    }
    s.control().region.store(good, Relaxed);
    assert_eq!(d.get(&1).unwrap(), Some(2));
}

#[test]
fn garbage_in_the_region_is_refused() {
    let d = SharedDict::<u32, u32>::new().unwrap();
    d.insert(1, 2).unwrap();
    let s = &*d.shared;
    let t = s.table().unwrap();
    let top = t.top().unwrap();
    // A top past the region, a bucket count that is not a power of two.
    t.field(R_TOP).unwrap().store(t.r.size + 8, Relaxed);
    assert!(matches!(d.len(), Err(DictError::Corrupt(_))));
    t.field(R_TOP).unwrap().store(top, Relaxed);
    t.field(R_BUCKETS).unwrap().store(7, Relaxed);
    assert!(matches!(d.len(), Err(DictError::Corrupt(_))));
    t.field(R_BUCKETS).unwrap().store(t.r.nb, Relaxed);
    // Every bucket pointing past the top, or at a misaligned offset.
    for i in 0..t.r.nb {
        t.bucket(i).unwrap().store(top + 64, Relaxed);
    }
    assert!(matches!(d.get(&1), Err(DictError::Corrupt(_))));
    for i in 0..t.r.nb {
        t.bucket(i).unwrap().store(t.r.arena() + 3, Relaxed);
    }
    assert!(matches!(d.keys(), Err(DictError::Corrupt(_))));
    // An entry whose lengths run past the top.
    d.clear().unwrap();
    d.insert(1, 2).unwrap();
    let t = s.table().unwrap();
    let first = t.r.arena();
    t.mem
        .word(t.r.off + first + 8)
        .unwrap()
        .store(u64::MAX, Relaxed);
    assert!(matches!(d.items(), Err(DictError::Corrupt(_))));
}

#[test]
fn the_hash_is_fixed() {
    // The same in every process and every run: FNV-1a's published test vector.
    assert_eq!(hash(b"a"), 0xaf63_dc4c_8601_ec8c);
}
