//! One descriptor passed over a `SOCK_SEQPACKET` socket with `SCM_RIGHTS` (`unix(7)`): the traced child sends its seccomp listener, the supervisor receives it.
//!
//! Sending runs in a forked child of a possibly multi-threaded parent, so it
//! allocates nothing: the control buffer is on the stack and rustix makes
//! the `sendmsg(2)` system call itself.

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, OwnedFd};

use rustix::io::Errno;
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};

/// Sends `fd` and one byte of data, which a `SOCK_SEQPACKET` message
/// carries so the receiver can tell a message from the end of the stream.
/// Async-signal-safe.
pub(super) fn send(socket: BorrowedFd<'_>, fd: BorrowedFd<'_>) -> io::Result<()> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let fds = [fd];
    loop {
        let mut control = SendAncillaryBuffer::new(&mut space);
        if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
            return Err(io::Error::other("no room for the descriptor"));
        }
        match rustix::net::sendmsg(socket, &[IoSlice::new(&[0])], &mut control, SendFlags::NOSIGNAL)
        {
            Ok(_) => return Ok(()),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Receives one descriptor, close-on-exec; `None` at the end of the
/// stream. `dont_wait` makes it fail with `EAGAIN` rather than wait.
pub(super) fn receive(socket: BorrowedFd<'_>, dont_wait: bool) -> io::Result<Option<OwnedFd>> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut byte = [0u8; 1];
    let mut flags = RecvFlags::CMSG_CLOEXEC;
    if dont_wait {
        flags |= RecvFlags::DONTWAIT;
    }
    loop {
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let received = match rustix::net::recvmsg(
            socket,
            &mut [IoSliceMut::new(&mut byte)],
            &mut control,
            flags,
        ) {
            Ok(received) => received,
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        };
        if received.bytes == 0 {
            return Ok(None);
        }
        // Any other descriptor the message carried is closed when `control`
        // is dropped.
        for message in control.drain() {
            if let RecvAncillaryMessage::ScmRights(mut fds) = message
                && let Some(fd) = fds.next()
            {
                return Ok(Some(fd));
            }
        }
        return Err(io::Error::other("the message carried no descriptor"));
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use rustix::net::{AddressFamily, SocketFlags, SocketType};

    use super::*;

    #[test]
    fn a_descriptor_sent_arrives_as_the_same_file_and_the_end_is_none() {
        let (a, b) = rustix::net::socketpair(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC,
            None,
        )
        .unwrap();
        let file = tempfile::tempfile().unwrap();
        send(a.as_fd(), file.as_fd()).unwrap();
        let got = receive(b.as_fd(), false).unwrap().unwrap();
        let (sent, arrived) = (rustix::fs::fstat(&file).unwrap(), rustix::fs::fstat(&got).unwrap());
        assert_eq!((sent.st_dev, sent.st_ino), (arrived.st_dev, arrived.st_ino));
        assert!(rustix::io::fcntl_getfd(&got).unwrap().contains(rustix::io::FdFlags::CLOEXEC));
        assert!(
            matches!(receive(b.as_fd(), true), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
        );
        drop(a);
        assert!(receive(b.as_fd(), false).unwrap().is_none());
    }
}
