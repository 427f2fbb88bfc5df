//! What the tests, the fuzz targets and the bench use to talk to a server
//! as a client would.
//!
//! - [`http1`]: one HTTP/1 response reader, fed bytes as they arrive,
//!   handing back whole responses and keeping what is left over for the
//!   next one.

pub mod http1;
