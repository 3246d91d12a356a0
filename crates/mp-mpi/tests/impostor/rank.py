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
    answers = [
        lambda job, chunk: b"\x01\x02\x03",  # shorter than a header
        lambda job, chunk: job + chunk + b"\x01\xff\xff\xff\xff",  # a failure that does not decode
        lambda job, chunk: b"\x00" * 8 + b"\x07" * 8 + b"\x00",  # the reply to another chunk
        lambda job, chunk: job + chunk + b"\x00\xff",  # values that do not decode
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
            reply = answers[served % len(answers)](bytes(buf[0:8]), bytes(buf[8:16]))
            comm.Send([reply, MPI.BYTE], dest=0, tag=RESULT)
            served += 1


main()
