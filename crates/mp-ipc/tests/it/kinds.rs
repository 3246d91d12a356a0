//! Which public types cross threads (as tokio's `_assert_kinds`): a change that drops `Send`
//! or `Sync` from one of them fails to build here.

use mp_ipc::{
    Address, AuthenticationError, Connection, GetError, JoinableQueue, Listener, ListenerError,
    PutError, Queue, RecvError, SendError, SimpleQueue, TaskDoneError,
};

fn send_sync<T: Send + Sync>() {}

#[test]
fn public_types_cross_threads() {
    // Connections and queues are shared between threads as between processes.
    send_sync::<Connection>();
    send_sync::<Queue<String>>();
    send_sync::<JoinableQueue<String>>();
    send_sync::<SimpleQueue<String>>();
    send_sync::<Listener>();
    send_sync::<Address>();
    send_sync::<SendError>();
    send_sync::<RecvError>();
    send_sync::<PutError>();
    send_sync::<GetError>();
    send_sync::<TaskDoneError>();
    send_sync::<AuthenticationError>();
    send_sync::<ListenerError>();
}
