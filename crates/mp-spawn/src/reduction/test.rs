use std::collections::BTreeMap;

use super::*;

struct Refuses;

impl Serialize for Refuses {
    fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(S::Error::custom("my message"))
    }
}

#[derive(Serialize)]
enum Deep {
    Struct {
        a: u8,
        b: Vec<BTreeMap<String, (u8, Option<Refuses>)>>,
    },
}

#[test]
fn a_custom_serialize_error_keeps_its_text_at_any_depth() {
    let mut map = BTreeMap::new();
    map.insert("k".to_string(), (1, Some(Refuses)));
    let value = Deep::Struct {
        a: 1,
        b: vec![BTreeMap::new(), map],
    };
    let e = dumps(&value).unwrap_err();
    assert_eq!(e.0, "my message");
    let mut buf = vec![9];
    let e = dumps_into(&value, &mut buf).unwrap_err();
    assert_eq!(e.0, "my message");
    // postcard's own errors keep postcard's text.
    struct Unsized;
    impl Serialize for Unsized {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeSeq;
            s.serialize_seq(None)?.end()
        }
    }
    assert!(!dumps(&Unsized).unwrap_err().0.contains("my message"));
}
