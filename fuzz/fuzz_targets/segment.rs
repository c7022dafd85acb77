//! A folder name is classified or refused with a message, never a panic; what is classified
//! prints back as itself.
#![no_main]

use arbor_build::Segment;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|name: &str| {
    match Segment::parse(name) {
        Ok(segment) => assert_eq!(Segment::parse(&segment.to_string()), Ok(segment)),
        Err(error) => {
            assert!(!error.problem.is_empty() && !error.help.is_empty());
            assert_eq!(error.segment, name);
        }
    }
});
