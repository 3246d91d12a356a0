//! Which public types cross threads (as tokio's `_assert_kinds`): a change that drops `Send`
//! or `Sync` from one of them fails to build here.

use mp_spawn::reduction::{DecodeError, Dumped, EncodeError, Fd};
use mp_spawn::{
    ActiveChild, Context, ContextError, CurrentProcess, ForkServer, ParentProcess, Process,
    ProcessError, StartMethod,
};

fn send<T: Send>() {}
fn send_sync<T: Send + Sync>() {}

#[test]
fn public_types_cross_threads() {
    // A `Process` moves to another thread (to join it there); it is not `Sync`: its methods
    // that start or join take `&mut self`, and the target it holds need not be `Sync`.
    send::<Process<u64>>();
    send_sync::<ForkServer>();
    send_sync::<Context>();
    send_sync::<StartMethod>();
    send_sync::<CurrentProcess>();
    send_sync::<ParentProcess>();
    send_sync::<ActiveChild>();
    send_sync::<ProcessError>();
    send_sync::<ContextError>();
    send_sync::<Fd>();
    send_sync::<Dumped>();
    send_sync::<EncodeError>();
    send_sync::<DecodeError>();
}
