use super::*;
use crate::{DictServant, ListServant};

/// A client's `Create` names a creator only by an exact registered reference: wild indexes,
/// and every slot near a real creator that is not one, are refused, never called.
#[test]
fn a_creator_is_found_by_its_exact_reference_only() {
    let list = type_ref::<ListServant<u32>>();
    let dict = type_ref::<DictServant<String, u64>>();
    assert!(creator_at(list).is_some());
    assert!(creator_at(dict).is_some());
    for wild in [u32::MAX, u32::MAX - 1, 1 << 24] {
        assert!(creator_at(RawCodeRef::from_index(wild)).is_none());
    }
    // Whatever a nearby slot is, resolving it never yields anything but a creator: calling one
    // with garbage arguments is a typed error, not a crash.
    for index in list.index().saturating_sub(32)..list.index() + 32 {
        if let Some(create) = creator_at(RawCodeRef::from_index(index)) {
            let _ = create(&[0xff; 3]);
        }
    }
}
