//! A type of your own served by a manager (Python's `BaseManager.register('Counter',
//! Counter)` then `manager.Counter()`): the type implements `Servant`, whose calls are a serde
//! enum; four processes share one counter through proxies, and the server answers one call
//! at a time, so every increment counts.
//!
//! Prints `counter = 400` (4 processes x 100 increments), then `history has 4 marks, the last
//! = Some(400)` (each process marks the value once, after its increments).

use mp::managers::{Manager, Proxy, RemoteError, Servant};
use serde::{Deserialize, Serialize};

/// The type the server holds.
#[derive(Default)]
struct Counter {
    value: u64,
    history: Vec<u64>,
}

/// Its calls.
#[derive(Serialize, Deserialize)]
enum CounterCall {
    Add(u64),
    /// Notes the current value in the history and returns it.
    Mark,
    Get,
    History,
}

/// Its replies.
#[derive(Serialize, Deserialize, Debug)]
enum CounterReply {
    Value(u64),
    History(Vec<u64>),
}

impl Servant for Counter {
    type Args = u64;
    type Call = CounterCall;
    type Reply = CounterReply;

    fn create(start: u64) -> Counter {
        Counter {
            value: start,
            history: Vec::new(),
        }
    }

    fn call(&mut self, call: CounterCall) -> Result<CounterReply, RemoteError> {
        Ok(match call {
            CounterCall::Add(n) => {
                self.value += n;
                CounterReply::Value(self.value)
            }
            CounterCall::Mark => {
                self.history.push(self.value);
                CounterReply::Value(self.value)
            }
            CounterCall::Get => CounterReply::Value(self.value),
            CounterCall::History => CounterReply::History(self.history.clone()),
        })
    }
}

fn add_hundred(counter: Proxy<Counter>) {
    for _ in 0..100 {
        counter.call(CounterCall::Add(1)).expect("add");
    }
    counter.call(CounterCall::Mark).expect("mark");
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manager = Manager::new()?;
    let counter = manager.serve::<Counter>(0)?;
    let mut workers: Vec<_> = (0..4)
        .map(|_| mp::Process::new(add_hundred, (counter.clone(),)))
        .collect();
    for w in &mut workers {
        w.start()?;
    }
    for w in &mut workers {
        w.join()?;
    }
    if let CounterReply::Value(v) = counter.call(CounterCall::Get)? {
        println!("counter = {v}");
    }
    if let CounterReply::History(mut h) = counter.call(CounterCall::History)? {
        // Each mark came after that process's own 100 increments, but the others' may have
        // come in between: sorted, the marks show how the total grew.
        h.sort_unstable();
        println!("history has {} marks, the last = {:?}", h.len(), h.last());
    }
    Ok(())
}
