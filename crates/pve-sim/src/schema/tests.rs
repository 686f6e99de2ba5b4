//! Tests of size parsing and formatting, path lookup and the ranges of
//! indexed names.

use super::*;

#[test]
fn sizes_follow_pve_parse_and_format() {
    assert_eq!(parse_size("8G"), Some(8 << 30));
    assert_eq!(parse_size("1.5G"), Some(3 << 29));
    assert_eq!(parse_size("1024"), Some(1024));
    assert_eq!(parse_size("x"), None);
    assert_eq!(format_size(10 << 30), "10G");
    assert_eq!(format_size(1536 << 20), "1536M");
    assert_eq!(format_size(1 << 40), "1T");
}

#[test]
fn lookup_prefers_literal_segments_and_reports_variables() {
    let s = schema().unwrap();
    let m = s
        .lookup("GET", "/nodes/pve1/lxc/105/status/current")
        .unwrap();
    assert_eq!(m.template, "/nodes/{node}/lxc/{vmid}/status/current");
    assert_eq!(
        m.vars,
        vec![
            ("node".into(), "pve1".into()),
            ("vmid".into(), "105".into())
        ]
    );
    assert!(
        s.lookup("GET", "/nodes/pve1/nothing-here/x/y/z/w")
            .is_none()
    );
    assert!(s.lookup("PATCH", "/version").unwrap().info.is_none());
}

#[test]
fn indexed_names_stay_in_pve_ranges() {
    let s = schema().unwrap();
    let props = s.properties("POST", "/nodes/{node}/lxc").unwrap();
    assert!(indexed_prop(props, "net31").is_some());
    assert!(indexed_prop(props, "net32").is_none());
    assert!(indexed_prop(props, "mp255").is_some());
    assert!(indexed_prop(props, "mp01").is_none());
    assert!(indexed_prop(props, "scsi0").is_none());
}
