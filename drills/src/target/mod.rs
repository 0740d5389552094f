//! Restore targets beyond the scratch folder every run restores into.
//!
//! `directory` (the default) is the scratch folder itself: checks look at the restored files. [`vm`] boots
//! the restored disk images in an isolated QEMU and checks the running machine; the boot is a phase of the
//! run and part of its RTA.

pub mod vm;
