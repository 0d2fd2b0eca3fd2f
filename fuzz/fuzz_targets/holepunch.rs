#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../targets_common.rs"]
#[allow(dead_code)]
mod targets_common;

fuzz_target!(|data: &[u8]| targets_common::check_holepunch(data));
