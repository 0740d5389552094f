//! Tests of the pxar decoder against upstream-written vectors, hostile and damaged input, and extraction
//! through the real restore sink.

mod bad_input;
mod encoder;
mod fuzz;
mod restore;
mod support;
mod vectors;
