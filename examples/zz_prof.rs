#![allow(clippy::undocumented_unsafe_blocks)]
use std::os::fd::AsRawFd;
fn trivial(x: u64) -> u64 {
    x + 1
}
fn time(label: &str, n: u32, mut f: impl FnMut()) {
    let t = std::time::Instant::now();
    for _ in 0..n {
        f()
    }
    println!("{label:>28}: {:?}", t.elapsed() / n);
}
fn main() {
    let n = 1500;
    for _round in 0..2 {
        time("bare fork+waitpid", n, || unsafe {
            let pid = libc::fork();
            if pid == 0 {
                libc::_exit(0)
            }
            let mut st = 0;
            libc::waitpid(pid, &mut st, 0);
        });
        time("fork+sock reply+waitpid", n, || unsafe {
            let mut fds = [0; 2];
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
                0,
                fds.as_mut_ptr(),
            );
            let pid = libc::fork();
            if pid == 0 {
                libc::send(fds[1], [0u8; 32].as_ptr().cast(), 32, 0);
                libc::_exit(0)
            }
            libc::close(fds[1]);
            let mut b = [0u8; 64];
            libc::recv(fds[0], b.as_mut_ptr().cast(), 64, 0);
            let mut st = 0;
            libc::waitpid(pid, &mut st, 0);
            libc::close(fds[0]);
        });
        time("fork+sock+pidfd poll", n, || unsafe {
            let mut fds = [0; 2];
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
                0,
                fds.as_mut_ptr(),
            );
            let pid = libc::fork();
            if pid == 0 {
                libc::send(fds[1], [0u8; 32].as_ptr().cast(), 32, 0);
                libc::_exit(0)
            }
            libc::close(fds[1]);
            let pfd = libc::syscall(libc::SYS_pidfd_open, pid, 0) as i32;
            let mut p = [
                libc::pollfd {
                    fd: fds[0],
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: pfd,
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            libc::poll(p.as_mut_ptr(), 2, -1);
            let mut b = [0u8; 64];
            libc::recv(fds[0], b.as_mut_ptr().cast(), 64, 0);
            libc::poll(p[1..].as_mut_ptr(), 1, -1);
            let mut st = 0;
            libc::waitpid(pid, &mut st, 0);
            libc::close(fds[0]);
            libc::close(pfd);
        });
        let ctx = mp::get_context("fork").unwrap();
        time("mp fork", n, || {
            let mut p = ctx.process(trivial, (1,));
            p.start().unwrap();
            p.join().unwrap();
        });
        let ctx = mp::get_context("forkserver").unwrap();
        time("mp forkserver", n, || {
            let mut p = ctx.process(trivial, (1,));
            p.start().unwrap();
            p.join().unwrap();
        });
        let _ = std::io::stdout().as_raw_fd();
    }
}
