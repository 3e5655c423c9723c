//! OpenFlow wire codec. Filled by the OpenFlow issue; the foundation only needs the crate to exist.
