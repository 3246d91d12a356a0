//! Unit tests of the table's checks (garbage in the control word or the region header gives
//! `Corrupt`, never an access outside the mapping), of the keyed hash, and of the layout
//! version.

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
fn the_hash_is_siphash_1_3() {
    // A fixed definition, the same in every process and every build: SipHash-1-3's outputs
    // for the key 00..0f (the reference vectors' key), the empty message and 00..0e.
    let key: [u8; 16] = std::array::from_fn(|i| i as u8);
    let k = Key::from_words([
        u64::from_le_bytes(key[..8].try_into().unwrap()),
        u64::from_le_bytes(key[8..].try_into().unwrap()),
    ]);
    assert_eq!(k.hash(b""), 0xabac_0158_050f_c4dc);
    let message: Vec<u8> = (0..15).collect();
    assert_eq!(k.hash(&message), 0xd320_d86d_2a51_9956);
}

#[test]
fn two_dicts_get_different_keys() {
    let a = SharedDict::<u32, u32>::new().unwrap();
    let b = SharedDict::<u32, u32>::new().unwrap();
    let (ka, kb) = (a.shared.key.words(), b.shared.key.words());
    assert_ne!(ka, kb);
    assert_ne!(ka, [0, 0]);
    // The key is in the header, and a copy received elsewhere reads the same one.
    let control = a.shared.control();
    assert_eq!(
        [control.key[0].load(Relaxed), control.key[1].load(Relaxed)],
        ka
    );
    let packed = mp_spawn::reduction::dumps(&a).unwrap();
    let copy: SharedDict<u32, u32> = loads(&packed.bytes, packed.fds).unwrap();
    assert_eq!(copy.shared.key.words(), ka);
    a.insert(7, 8).unwrap();
    assert_eq!(copy.get(&7).unwrap(), Some(8));
}

/// FNV-1a, the unkeyed hash of layout 1: what an attacker could aim keys at.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[test]
fn keys_chosen_to_collide_under_fnv_are_spread() {
    // 200 keys whose FNV-1a hashes agree in their low 12 bits: under FNV they would all start
    // probing at one bucket of any table of up to 4096 buckets (one chain of 200).
    const N: usize = 200;
    let colliding: Vec<String> = (0u64..)
        .map(|i| format!("user-{i}"))
        .filter(|k| fnv1a(&encode(k).unwrap()) & 0xfff == 0)
        .take(N)
        .collect();
    let d = SharedDict::<String, u32>::new().unwrap();
    for (i, k) in colliding.iter().enumerate() {
        d.insert(k.clone(), i as u32).unwrap();
    }
    let t = d.shared.table().unwrap();
    let mask = t.r.nb - 1;
    assert!(t.r.nb <= 4096);
    let fnv_homes: std::collections::HashSet<u64> = colliding
        .iter()
        .map(|k| fnv1a(&encode(k).unwrap()) & mask)
        .collect();
    assert_eq!(fnv_homes.len(), 1, "the keys collide under FNV");
    // Under the keyed hash: many home buckets, and every key close to its home.
    let mut homes = std::collections::HashSet::new();
    let mut longest = 0;
    for k in &colliding {
        let bytes = encode(k).unwrap();
        let h = d.shared.key.hash(&bytes);
        let (slot, found) = t.find(h, &bytes).unwrap();
        assert!(found.is_some());
        homes.insert(h & mask);
        longest = longest.max(slot.wrapping_sub(h & mask) & mask);
    }
    // 200 keys in 512 buckets or more: about 165 distinct homes, probes of a few buckets.
    assert!(homes.len() > N / 2, "{} homes", homes.len());
    assert!(longest < 40, "a probe of {longest} buckets");
    for (i, k) in colliding.iter().enumerate() {
        assert_eq!(d.get(k).unwrap(), Some(i as u32));
    }
}

#[test]
fn another_layout_is_refused_with_its_version() {
    let d = SharedDict::<u8, u8>::new().unwrap();
    let control = d.shared.control();
    let ours = control.magic.load(Relaxed);
    assert_eq!(ours & 0xffff, u64::from(header::LAYOUT));
    for (version, magic) in [(1u16, (ours & !0xffff) | 1), (3, (ours & !0xffff) | 3)] {
        control.magic.store(magic, Relaxed);
        let packed = mp_spawn::reduction::dumps(&d).unwrap();
        // Typed, from the check made before mapping...
        let err = header::check_layout(std::os::fd::AsFd::as_fd(&packed.fds[0])).unwrap_err();
        assert!(
            matches!(err, DictError::LayoutVersion { found, expected: 2 } if found == version),
            "{err:?}"
        );
        // ...and said in full where the map is received.
        let err = loads::<SharedDict<u8, u8>>(&packed.bytes, packed.fds).unwrap_err();
        assert!(
            err.to_string()
                .contains(&format!("layout version {version}")),
            "{err}"
        );
    }
    control.magic.store(ours, Relaxed);
    let packed = mp_spawn::reduction::dumps(&d).unwrap();
    assert!(loads::<SharedDict<u8, u8>>(&packed.bytes, packed.fds).is_ok());
}
