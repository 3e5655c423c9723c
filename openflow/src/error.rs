//! Decode errors and their OpenFlow ERROR (type, code) for the negotiated version.
//!
//! Every decode failure carries an [`OfpErr`], named after Open vSwitch's `OFPERR_*` constant
//! that `ovs-vswitchd` would send for the same defect, so the server can answer a malformed or
//! unsupported request with the reply a controller already knows how to handle.  The numbering
//! differs by version (OpenFlow 1.0 vs 1.1+ vs 1.2+ experimenter errors); [`OfpErr::code`]
//! does that translation.  The per-version numbers are the ones listed in Open vSwitch's
//! `include/openvswitch/ofp-errors.h` ("OF1.0(1,0), OF1.1+(...)", "NX1.2+(n)" meaning a
//! Nicira experimenter error, "ONF1.3(n)" an ONF experimenter error).

use crate::{NX_VENDOR_ID, ONF_VENDOR_ID};

/// An OpenFlow error condition (Open vSwitch's `OFPERR_*` names).
#[allow(non_camel_case_types, clippy::upper_case_acronyms)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OfpErr {
    /// Hello failed: no common version.
    OFPHFC_INCOMPATIBLE,
    OFPBRC_BAD_VERSION,
    OFPBRC_BAD_TYPE,
    OFPBRC_BAD_STAT,
    OFPBRC_BAD_VENDOR,
    OFPBRC_BAD_SUBTYPE,
    OFPBRC_EPERM,
    OFPBRC_BAD_LEN,
    OFPBRC_BAD_TABLE_ID,
    OFPBRC_BAD_PORT,
    NXBRC_NXM_INVALID,
    NXBRC_MUST_BE_ZERO,
    NXBRC_BAD_REASON,
    OFPBAC_BAD_TYPE,
    OFPBAC_BAD_LEN,
    OFPBAC_BAD_VENDOR,
    OFPBAC_BAD_VENDOR_TYPE,
    OFPBAC_BAD_OUT_PORT,
    OFPBAC_BAD_ARGUMENT,
    OFPBAC_BAD_SET_TYPE,
    OFPBAC_BAD_SET_LEN,
    OFPBAC_BAD_SET_ARGUMENT,
    OFPBAC_BAD_SET_MASK,
    NXBAC_MUST_BE_ZERO,
    OFPBIC_UNKNOWN_INST,
    OFPBIC_UNSUP_INST,
    OFPBIC_BAD_LEN,
    OFPBIC_DUP_INST,
    OFPBMC_BAD_TYPE,
    OFPBMC_BAD_LEN,
    OFPBMC_BAD_WILDCARDS,
    OFPBMC_BAD_FIELD,
    OFPBMC_BAD_VALUE,
    OFPBMC_BAD_MASK,
    OFPBMC_BAD_PREREQ,
    OFPBMC_DUP_FIELD,
    OFPFMFC_BAD_COMMAND,
    OFPFMFC_BAD_FLAGS,
    OFPGMFC_BAD_TYPE,
    OFPGMFC_BAD_COMMAND,
    OFPGMFC_BAD_BUCKET,
    OFPPMFC_BAD_PORT,
    OFPTMFC_BAD_TABLE,
    OFPRRFC_BAD_ROLE,
    OFPMMFC_BAD_COMMAND,
    OFPMMFC_BAD_FLAGS,
    OFPMMFC_BAD_BAND,
    OFPBPC_BAD_TYPE,
    OFPBPC_BAD_LEN,
    OFPBPC_BAD_VALUE,
    OFPBFC_BAD_TYPE,
    OFPBFC_BAD_FLAGS,
    OFPBFC_MSG_BAD_LEN,
    OFPBFC_MSG_UNSUP,
    NXR_NOT_SUPPORTED,
}

/// How an error is numbered on the wire in one OpenFlow version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// `ofp_error_msg` with this `type` and `code`.
    Standard { err_type: u16, code: u16 },
    /// OpenFlow 1.2+ `ofp_error_experimenter_msg` (type 0xffff).
    Experimenter { exp_code: u16, experimenter: u32 },
    /// OpenFlow 1.0/1.1 Nicira vendor error: `type` NXET_VENDOR (0xb0c2), `code`
    /// NXVC_VENDOR_ERROR (0), then `nx_vendor_error {vendor, type, code}` before the data.
    NxVendor { err_type: u16, code: u16 },
}

impl OfpErr {
    /// The wire numbering for OpenFlow `version` (1 = 1.0 ... 6 = 1.5).
    pub fn code(self, version: u8) -> ErrorCode {
        use OfpErr::*;
        let std = |err_type: u16, code: u16| ErrorCode::Standard { err_type, code };
        let nx = |exp_code: u16| ErrorCode::Experimenter {
            exp_code,
            experimenter: NX_VENDOR_ID,
        };
        let onf = |exp_code: u16| ErrorCode::Experimenter {
            exp_code,
            experimenter: ONF_VENDOR_ID,
        };
        // "NX1.0(t,c)" entries: Nicira codes carried in NXET_VENDOR errors.
        let nxv = |err_type: u16, code: u16| ErrorCode::NxVendor { err_type, code };
        let v10 = version <= 1;
        let v11 = version <= 2;
        match self {
            OFPHFC_INCOMPATIBLE => std(0, 0),
            OFPBRC_BAD_VERSION => std(1, 0),
            OFPBRC_BAD_TYPE => std(1, 1),
            OFPBRC_BAD_STAT => std(1, 2),
            OFPBRC_BAD_VENDOR => std(1, 3),
            OFPBRC_BAD_SUBTYPE => std(1, 4),
            OFPBRC_EPERM => std(1, 5),
            OFPBRC_BAD_LEN => std(1, 6),
            OFPBRC_BAD_TABLE_ID if v10 => nxv(1, 512),
            OFPBRC_BAD_TABLE_ID => std(1, 9),
            OFPBRC_BAD_PORT if v11 => nxv(1, 514),
            OFPBRC_BAD_PORT => std(1, 11),
            NXBRC_NXM_INVALID if v11 => nxv(1, 256),
            NXBRC_NXM_INVALID => nx(2),
            NXBRC_MUST_BE_ZERO if v11 => nxv(1, 515),
            NXBRC_MUST_BE_ZERO => nx(4),
            NXBRC_BAD_REASON if v11 => nxv(1, 516),
            NXBRC_BAD_REASON => nx(5),
            OFPBAC_BAD_TYPE => std(2, 0),
            OFPBAC_BAD_LEN => std(2, 1),
            OFPBAC_BAD_VENDOR => std(2, 2),
            OFPBAC_BAD_VENDOR_TYPE => std(2, 3),
            OFPBAC_BAD_OUT_PORT => std(2, 4),
            OFPBAC_BAD_ARGUMENT => std(2, 5),
            OFPBAC_BAD_SET_TYPE if v11 => nxv(1, 523),
            OFPBAC_BAD_SET_TYPE => std(2, 13),
            OFPBAC_BAD_SET_LEN if v11 => nxv(1, 524),
            OFPBAC_BAD_SET_LEN => std(2, 14),
            OFPBAC_BAD_SET_ARGUMENT if v11 => nxv(1, 525),
            OFPBAC_BAD_SET_ARGUMENT => std(2, 15),
            OFPBAC_BAD_SET_MASK if version >= 6 => std(2, 16),
            OFPBAC_BAD_SET_MASK => onf(4250),
            NXBAC_MUST_BE_ZERO if v11 => nxv(2, 256),
            NXBAC_MUST_BE_ZERO => nx(11),
            OFPBIC_UNKNOWN_INST => std(3, 0),
            OFPBIC_UNSUP_INST if v10 => nxv(2, 257),
            OFPBIC_UNSUP_INST => std(3, 1),
            OFPBIC_BAD_LEN => std(3, 7),
            OFPBIC_DUP_INST if version == 2 => nxv(3, 256),
            OFPBIC_DUP_INST if version <= 4 => onf(2600),
            OFPBIC_DUP_INST => std(3, 9),
            OFPBMC_BAD_TYPE if v10 => nxv(1, 256),
            OFPBMC_BAD_TYPE => std(4, 0),
            OFPBMC_BAD_LEN if v10 => nxv(1, 256),
            OFPBMC_BAD_LEN => std(4, 1),
            OFPBMC_BAD_WILDCARDS if v10 => nxv(1, 262),
            OFPBMC_BAD_WILDCARDS => std(4, 5),
            OFPBMC_BAD_FIELD if v10 => nxv(0, 263),
            OFPBMC_BAD_FIELD => std(4, 6),
            OFPBMC_BAD_VALUE if v10 => nxv(1, 258),
            OFPBMC_BAD_VALUE => std(4, 7),
            OFPBMC_BAD_MASK if v11 => nxv(1, 259),
            OFPBMC_BAD_MASK => std(4, 8),
            OFPBMC_BAD_PREREQ if v11 => nxv(1, 260),
            OFPBMC_BAD_PREREQ => std(4, 9),
            OFPBMC_DUP_FIELD if v11 => nxv(1, 261),
            OFPBMC_DUP_FIELD => std(4, 10),
            OFPFMFC_BAD_COMMAND if v10 => std(3, 4),
            OFPFMFC_BAD_COMMAND => std(5, 6),
            OFPFMFC_BAD_FLAGS if v10 => nxv(3, 258),
            OFPFMFC_BAD_FLAGS if version == 2 => nxv(5, 258),
            OFPFMFC_BAD_FLAGS => std(5, 7),
            OFPGMFC_BAD_TYPE if v10 => nxv(6, 10),
            OFPGMFC_BAD_TYPE => std(6, 10),
            OFPGMFC_BAD_COMMAND if v10 => nxv(6, 11),
            OFPGMFC_BAD_COMMAND => std(6, 11),
            OFPGMFC_BAD_BUCKET if v10 => nxv(6, 12),
            OFPGMFC_BAD_BUCKET => std(6, 12),
            OFPPMFC_BAD_PORT if v10 => std(4, 0),
            OFPPMFC_BAD_PORT => std(7, 0),
            OFPTMFC_BAD_TABLE => std(8, 0),
            OFPRRFC_BAD_ROLE if v11 => nxv(1, 513),
            OFPRRFC_BAD_ROLE => std(11, 2),
            OFPMMFC_BAD_COMMAND => std(12, 4),
            OFPMMFC_BAD_FLAGS => std(12, 5),
            OFPMMFC_BAD_BAND => std(12, 8),
            OFPBPC_BAD_TYPE if v11 => nxv(13, 2),
            OFPBPC_BAD_TYPE if version == 4 => std(13, 2),
            OFPBPC_BAD_TYPE if version == 3 => nx(25),
            OFPBPC_BAD_TYPE => std(14, 0),
            OFPBPC_BAD_LEN if v11 => nxv(13, 3),
            OFPBPC_BAD_LEN if version == 4 => std(13, 3),
            OFPBPC_BAD_LEN if version == 3 => nx(26),
            OFPBPC_BAD_LEN => std(14, 1),
            OFPBPC_BAD_VALUE if v11 => nxv(13, 4),
            OFPBPC_BAD_VALUE if version == 4 => std(13, 4),
            OFPBPC_BAD_VALUE if version == 3 => nx(27),
            OFPBPC_BAD_VALUE => std(14, 2),
            OFPBFC_BAD_TYPE if version <= 4 => onf(2306),
            OFPBFC_BAD_TYPE => std(17, 6),
            OFPBFC_BAD_FLAGS if version <= 4 => onf(2307),
            OFPBFC_BAD_FLAGS => std(17, 7),
            OFPBFC_MSG_BAD_LEN if version <= 4 => onf(2308),
            OFPBFC_MSG_BAD_LEN => std(17, 8),
            OFPBFC_MSG_UNSUP if version <= 4 => onf(2310),
            OFPBFC_MSG_UNSUP => std(17, 10),
            NXR_NOT_SUPPORTED if v11 => nxv(1, 533),
            NXR_NOT_SUPPORTED => nx(34),
        }
    }
}

/// A decode failure: the OpenFlow error to report plus where it was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind:?} in {context}")]
pub struct Error {
    /// The OpenFlow error to send back (see [`OfpErr::code`]).
    pub kind: OfpErr,
    /// What was being decoded (a static label, for logs).
    pub context: &'static str,
}

impl Error {
    pub fn new(kind: OfpErr, context: &'static str) -> Self {
        Error { kind, context }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// Shorthand for `Err(Error::new(kind, context))`.
pub(crate) fn fail<T>(kind: OfpErr, context: &'static str) -> Result<T> {
    Err(Error::new(kind, context))
}
