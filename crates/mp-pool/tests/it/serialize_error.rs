//! A value whose `Serialize` fails with its own message (`serde::ser::Error::custom`): the
//! pool's error keeps that message, whether the argument fails here or the result fails in a
//! worker, under each start method.

use mp_pool::{Pool, PoolError};
use mp_spawn::StartMethod;
use mp_spawn::testing::ctx;
use serde::{Deserialize, Serialize, Serializer};

mp_spawn::test_matrix!(map_keeps_the_message, apply_keeps_the_message);

/// `Refuses` fails to serialise, with the text "my message".
#[derive(Debug, Deserialize)]
enum Value {
    Fine(u64),
    Refuses,
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Fine(x) => s.serialize_newtype_variant("Value", 0, "Fine", x),
            Value::Refuses => Err(serde::ser::Error::custom("my message")),
        }
    }
}

fn pool(m: StartMethod) -> Pool {
    Pool::builder()
        .processes(2)
        .context(ctx(m))
        .build()
        .unwrap()
}

fn unwrap_value(v: Value) -> u64 {
    match v {
        Value::Fine(x) => x,
        Value::Refuses => u64::MAX,
    }
}

fn refuse_on_3(x: u64) -> Value {
    if x == 3 {
        Value::Refuses
    } else {
        Value::Fine(x)
    }
}

fn assert_keeps_message<T: std::fmt::Debug>(r: Result<T, PoolError>) {
    match r {
        Err(PoolError::Encode(text)) => assert!(text.contains("my message"), "{text}"),
        other => panic!("{other:?}"),
    }
}

fn map_keeps_the_message(m: StartMethod) {
    let pool = pool(m);
    // An argument that cannot be serialised: reported at submission.
    assert_keeps_message(pool.map(unwrap_value, [Value::Fine(1), Value::Refuses]));
    // A result that cannot be serialised: reported by the worker.
    assert_keeps_message(pool.map(refuse_on_3, 0..6u64));
    // The pool still works.
    assert_eq!(pool.map(unwrap_value, [Value::Fine(5)]).unwrap(), [5]);
}

fn apply_keeps_the_message(m: StartMethod) {
    let pool = pool(m);
    assert_keeps_message(pool.apply(unwrap_value, (Value::Refuses,)));
    assert_keeps_message(pool.apply(refuse_on_3, (3,)));
    assert_eq!(pool.apply(refuse_on_3, (2,)).map(unwrap_value).unwrap(), 2);
}
