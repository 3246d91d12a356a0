//! The executable's identity across hosts: the SHA-256 of its bytes (a device/inode pair
//! means nothing on another node). Computed once per process.

use std::io::Read;

use sha2::{Digest, Sha256};

/// The SHA-256 of `/proc/self/exe`, or an error message.
pub(crate) fn of_self() -> Result<&'static [u8], String> {
    // A `ForkOnce`: hashing takes a while, and a fork meanwhile (a fork-method worker) must
    // not leave its child waiting for a thread it does not have.
    static ID: mp_sys::fork::ForkOnce<Result<Vec<u8>, String>> = mp_sys::fork::ForkOnce::new();
    ID.get_or_init(|| hash_file("/proc/self/exe"))
        .as_deref()
        .map_err(Clone::clone)
}

fn hash_file(path: &str) -> Result<Vec<u8>, String> {
    let mut file = std::fs::File::open(path).map_err(|e| format!("{path}: {e}"))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0; 1 << 20];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("{path}: {e}")),
        }
    }
    Ok(hasher.finalize().to_vec())
}

/// Lower-case hex, for messages.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn is_stable_and_32_bytes() {
        let a = super::of_self().unwrap();
        assert_eq!(a.len(), 32);
        assert_eq!(a, super::of_self().unwrap());
        assert_eq!(super::hex(&[0, 0xab]), "00ab");
    }
}
