//! End-to-end tests of the hippo host against the guest plugins in
//! `tests/guests/`. The tests themselves live next to this file.
