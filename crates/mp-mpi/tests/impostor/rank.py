"""A worker rank that speaks mp-mpi's handshake correctly (it presents the SHA-256 of the
master's executable, given as argv[1]) and then answers every task with a bad frame, one kind
after another: the master must turn each into a typed error, never a panic or a hang."""
import hashlib
import os
import socket
import sys

from mpi4py import MPI

HELLO, START, TASK, RESULT, STOP = 1, 2, 3, 4, 5


def varint(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def main():
    comm = MPI.COMM_WORLD
    with open(sys.argv[1], "rb") as f:
        digest = hashlib.sha256(f.read()).digest()
    host = socket.gethostname().encode()
    hello = varint(len(digest)) + digest + varint(len(host)) + host + varint(os.getpid())
    comm.Send([hello, MPI.BYTE], dest=0, tag=HELLO)
    # A task frame is mp-pool's: a tag byte, then the chunk's id (8 bytes, little-endian).
    # An answer is a result frame: tag 1, slot (4 bytes), id (8), outcome (1), body.
    def result(chunk_id, outcome, body):
        return b"\x01" + b"\x00" * 4 + chunk_id + bytes([outcome]) + body

    answers = [
        lambda tid: b"\x01\x02\x03",  # shorter than a header
        lambda tid: result(tid, 5, b"\xff\xff\xff\xff"),  # a failure report that does not decode
        lambda tid: result((7).to_bytes(8, "little"), 0, b""),  # the answer to another chunk
        lambda tid: result(tid, 0, b"\xff"),  # values that do not decode
    ]
    served = 0
    while True:
        status = MPI.Status()
        comm.Probe(source=0, tag=MPI.ANY_TAG, status=status)
        buf = bytearray(status.Get_count(MPI.BYTE))
        comm.Recv([buf, MPI.BYTE], source=0, tag=status.Get_tag())
        tag = status.Get_tag()
        if tag == STOP:
            return
        if tag == TASK:
            reply = answers[served % len(answers)](bytes(buf[1:9]))
            comm.Send([reply, MPI.BYTE], dest=0, tag=RESULT)
            served += 1


main()
