//! The task functions and the one test body every pool runs, shared with mp-pool's suite (which
//! runs it on local pools and over a loopback transport); here it runs over the ranks of an
//! MPI job.
#![allow(dead_code)]

#[path = "../../../mp-pool/tests/common/generic.rs"]
mod generic;

// Used only with the `mpi` feature.
#[allow(unused_imports)]
pub(crate) use generic::{add, boom, generic_body, square};
