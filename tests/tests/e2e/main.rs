//! The end-to-end suite of xvswitchd, one test binary (one link step, and cargo's test threads
//! spread over every scenario). Each module is a theme; each test names what it proves in its
//! doc comment and asserts it on packets that crossed the switch or on state read back through
//! a real control client. Needs root; see the `xvs_tests` crate docs for how to run it.

mod accounting;
mod appctl;
mod conntrack;
mod forwarding;
mod geneve;
mod l2;
mod learn;
mod lifecycle;
mod local_port;
mod migration;
mod openflow;
mod openflow_hostile;
mod ovn;
mod ovn_ct;
mod ovn_migration;
mod ovn_tcp_migration;
mod ovs_interop;
mod ovsdb;
mod patch;
mod pmd_stats;
mod ports;
mod process;
mod vm_tap;
