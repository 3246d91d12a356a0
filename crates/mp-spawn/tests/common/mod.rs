//! Helpers shared by the integration tests.

/// A close-on-exec pipe: (read end, write end).
pub(crate) fn pipe() -> (std::fs::File, std::fs::File) {
    let mut fds = [0; 2];
    // SAFETY: a valid array for pipe2; both fds are then owned by the Files.
    unsafe {
        assert_eq!(libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC), 0);
        use std::os::fd::FromRawFd;
        (
            std::fs::File::from_raw_fd(fds[0]),
            std::fs::File::from_raw_fd(fds[1]),
        )
    }
}

/// A target that never returns (to be terminated or killed).
pub(crate) fn park_forever() {
    loop {
        std::thread::park();
    }
}
