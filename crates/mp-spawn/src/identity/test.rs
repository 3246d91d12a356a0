//! The two keys of the executable's identity, against files whose bytes the test knows.

use super::*;

use std::io::Write;

/// A file of `bytes` in a fresh temporary directory, removed when the returned guard drops.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new(name: &str, bytes: &[u8]) -> Scratch {
        let dir =
            std::env::temp_dir().join(format!("mp-identity-{}-{name}", mp_sys::process::getpid()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("file");
        std::fs::File::create(&path)
            .unwrap()
            .write_all(bytes)
            .unwrap();
        Scratch(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(self.0.parent().unwrap());
    }
}

#[test]
fn the_digest_is_the_sha256_of_the_bytes() {
    // sha256("abc"), FIPS 180-2's first example.
    let abc = Scratch::new("abc", b"abc");
    assert_eq!(
        digest_of(&abc.0).unwrap().to_string(),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    let e = digest_of(Path::new("/nonexistent/mp")).unwrap_err();
    assert!(e.to_string().contains("/nonexistent/mp"), "{e}");
}

#[test]
fn this_process_is_identified_by_its_executable() {
    assert_eq!(
        digest().unwrap(),
        digest_of(Path::new("/proc/self/exe")).unwrap()
    );
    assert_eq!(digest().unwrap(), digest().unwrap());
    assert_eq!(file().unwrap(), file_of(std::process::id()).unwrap());
    // Another file: another identity, by either key.
    let other = Scratch::new("other", b"not this program");
    let meta = std::fs::metadata(&other.0).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_ne!(
        FileId {
            dev: meta.dev(),
            ino: meta.ino()
        },
        file().unwrap()
    );
    assert_ne!(digest_of(&other.0).unwrap(), digest().unwrap());
}
