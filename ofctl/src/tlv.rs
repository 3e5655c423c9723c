//! Geneve option ↔ `tun_metadataN` mappings (`add-tlv-map`, `del-tlv-map`,
//! `dump-tlv-map`): OVN maps its option (class 0x102, type 0x80) to `tun_metadata0` before
//! installing flows that match on it, so a switch cannot be set up for OVN flows without
//! these commands.

use openflow::message::TlvMap;

/// NXT_TLV_TABLE_MOD commands.
pub mod cmd {
    pub const ADD: u16 = 0;
    pub const DELETE: u16 = 1;
    pub const CLEAR: u16 = 2;
}

/// Parses `{class=C,type=T,len=L}->tun_metadataN[,...]` (`parse_ofp_tlv_table_mod_str`).
/// Numbers take C's base prefixes; like ovs-ofctl, anything malformed is just "invalid
/// tlv mapping".
pub fn parse_tlv_maps(s: &str) -> Result<Vec<TlvMap>, String> {
    let bad = || "invalid tlv mapping".to_string();
    let mut maps = Vec::new();
    let mut rest = s;
    while !rest.is_empty() {
        rest = rest.strip_prefix(',').unwrap_or(rest);
        let mut num = |prefix: &str| -> Result<u64, String> {
            let r = rest.strip_prefix(prefix).ok_or_else(bad)?;
            let (v, n) = crate::value::strtoull(r).ok_or_else(bad)?;
            rest = &r[n..];
            Ok(v)
        };
        let class = num("{class=")?;
        let ty = num(",type=")?;
        let len = num(",len=")?;
        let index = num("}->tun_metadata")?;
        // scanf's %hi/%hhi store the low bits.
        maps.push(TlvMap {
            option_class: class as u16,
            option_type: ty as u8,
            option_len: len as u8,
            index: index as u16,
        });
    }
    Ok(maps)
}

/// The mapping table as ovs-ofctl prints it (`print_tlv_table`), without a final newline.
pub fn format_tlv_table(maps: &[TlvMap]) -> String {
    let mut s = String::from(" mapping table:\n  class  type  length  match field\n");
    s.push_str(" ------  ----  ------  --------------");
    for m in maps {
        s.push_str(&format!(
            "\n {:>6}  {:>4}  {:>6}  tun_metadata{}",
            alt_hex(m.option_class as u64),
            alt_hex(m.option_type as u64),
            m.option_len,
            m.index
        ));
    }
    s
}

/// C's `%#x`: "0" for zero, else "0x..." .
fn alt_hex(v: u64) -> String {
    if v == 0 {
        "0".into()
    } else {
        format!("{v:#x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_format() {
        let m = parse_tlv_maps("{class=0x102,type=0x80,len=4}->tun_metadata0").unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(
            (m[0].option_class, m[0].option_type, m[0].option_len),
            (0x102, 0x80, 4)
        );
        assert_eq!(
            format_tlv_table(&m),
            " mapping table:\n  class  type  length  match field\n \
             ------  ----  ------  --------------\n  0x102  0x80       4  tun_metadata0"
        );
        let two =
            "{class=0xffff,type=0,len=4}->tun_metadata1,{class=1,type=2,len=8}->tun_metadata2";
        assert_eq!(parse_tlv_maps(two).unwrap().len(), 2);
        assert!(parse_tlv_maps("{class=1}").is_err());
        assert!(parse_tlv_maps("").unwrap().is_empty());
    }
}
