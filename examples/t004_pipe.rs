//! Post 004, `Pipe`: the child sends `[42, None, 'hello']`, the parent prints it.
//!
//! A Python list mixes types; here a list of a small enum prints the same text.
use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
enum Py {
    Int(i64),
    None,
    Str(String),
}

impl fmt::Display for Py {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Py::Int(n) => write!(f, "{n}"),
            Py::None => f.write_str("None"),
            Py::Str(s) => write!(f, "'{s}'"),
        }
    }
}

fn f(conn: mp::Connection) {
    conn.send(&vec![Py::Int(42), Py::None, Py::Str("hello".into())])
        .expect("send");
    conn.close();
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (parent_conn, child_conn) = mp::pipe(true)?;
    let mut p = mp::Process::new(f, (child_conn,));
    p.start()?;
    let list: Vec<Py> = parent_conn.recv()?;
    let items: Vec<String> = list.iter().map(Py::to_string).collect();
    println!("[{}]", items.join(", "));
    p.join()?;
    Ok(())
}
