//! Post 003, `dataupload`: one object per model (classes a, b, c, ...) whose `autoupload`
//! method runs in its own process, all started, then all joined.
//!
//! Python passes the bound method `my.autoupload` as the target. Here the object itself is
//! the (serde) argument and a plain fn calls its method: the child finds the fn, the object
//! travels as data. The post censors its URL; so does this port.
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug, Clone, Copy)]
enum Kind {
    A,
    B,
    C,
    D,
    E,
    F,
    G,
    H,
    I,
}

#[derive(Serialize, Deserialize, Debug)]
struct Uploader {
    kind: Kind,
    model: u32,
    url: String,
}

impl Uploader {
    fn autoupload(&self) {
        println!(
            "{:?}: uploading model {} to {} (pid {})",
            self.kind,
            self.model,
            self.url,
            std::process::id()
        );
    }
}

fn autoupload(uploader: Uploader) {
    uploader.autoupload();
}

fn dataupload(models: &[u32]) -> Result<(), mp::ProcessError> {
    let kinds = [
        Kind::A,
        Kind::B,
        Kind::C,
        Kind::D,
        Kind::E,
        Kind::F,
        Kind::G,
        Kind::H,
        Kind::I,
    ];
    let mut processes = Vec::new();
    for &model in models {
        let url = "CENSORED".to_string();
        let my = Uploader {
            kind: kinds[(model as usize - 1) % kinds.len()],
            model,
            url,
        };
        processes.push(mp::Process::new(autoupload, (my,)));
    }
    for process in &mut processes {
        process.start()?;
    }
    for process in &mut processes {
        process.join()?;
    }
    Ok(())
}

fn main() -> Result<(), mp::ProcessError> {
    let models = [1, 2, 3, 4];
    dataupload(&models)?;
    println!("all {} uploads joined", models.len());
    Ok(())
}
