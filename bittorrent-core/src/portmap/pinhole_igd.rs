//! UPnP IGD v2 `WANIPv6FirewallControl:1`: the service (under the
//! `WANConnectionDevice` of an IGD v2 description, found like the IPv4
//! one, see `igd`) and its SOAP actions `GetFirewallStatus`, `AddPinhole`,
//! `UpdatePinhole` and `DeletePinhole`.
//!
//! The device checks that the pinhole's `InternalClient` is the address
//! the request comes from (IGD v2 recommends it; miniupnpd answers 606
//! otherwise), so these calls go to the device's IPv6 address, from the
//! address the pinhole is for. Answers are bounded as in `igd`
//! ([`igd::MAX_SOAP`]); a `UniqueID` that is not a 16-bit number is
//! refused.

use super::igd::{self, element, Service};
use super::{MapError, Protocol};
use std::net::{IpAddr, Ipv6Addr};

/// The service type.
pub(crate) const FIREWALL_SERVICE: &str = "urn:schemas-upnp-org:service:WANIPv6FirewallControl:1";
/// The longest lease a pinhole may have (the service's `LeaseTime` is 1 to
/// 86400 s).
pub(crate) const MAX_LEASE: u32 = 86_400;

/// Fetch the description at `location` (on `device`) and find the
/// firewall control service in it.
pub(crate) fn fetch(location: &str, device: IpAddr) -> Result<Service, MapError> {
    igd::fetch_service_of(location, device, &[FIREWALL_SERVICE], || {
        "the device description has no WANIPv6FirewallControl service".into()
    })
}

/// `GetFirewallStatus`: whether the firewall filters inbound IPv6, and
/// whether it lets us open pinholes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FirewallStatus {
    pub(crate) enabled: bool,
    pub(crate) inbound_allowed: bool,
}

/// A UPnP boolean (`1`/`0`, `true`/`false`, `yes`/`no`).
fn boolean(body: &str, tag: &str) -> Option<bool> {
    let (v, _) = element(body, tag, 0)?;
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" => Some(true),
        "0" | "false" | "no" => Some(false),
        _ => None,
    }
}

/// The status in a `GetFirewallStatus` answer.
pub(crate) fn parse_status(body: &str) -> Result<FirewallStatus, MapError> {
    match (
        boolean(body, "FirewallEnabled"),
        boolean(body, "InboundPinholeAllowed"),
    ) {
        (Some(enabled), Some(inbound_allowed)) => Ok(FirewallStatus {
            enabled,
            inbound_allowed,
        }),
        _ => Err(MapError::Refused(
            "GetFirewallStatus: no FirewallEnabled and InboundPinholeAllowed in the answer".into(),
        )),
    }
}

/// `GetFirewallStatus`.
pub(crate) fn firewall_status(s: &Service) -> Result<FirewallStatus, MapError> {
    parse_status(&igd::call(s, "GetFirewallStatus", &[])?)
}

/// The `UniqueID` of an `AddPinhole` answer.
pub(crate) fn parse_unique_id(body: &str) -> Result<u16, MapError> {
    let id = element(body, "UniqueID", 0).map(|(t, _)| t.trim());
    id.and_then(|t| t.parse::<u16>().ok()).ok_or_else(|| {
        MapError::Refused(format!(
            "AddPinhole: no usable UniqueID in the answer ({:?})",
            id.unwrap_or("").chars().take(40).collect::<String>()
        ))
    })
}

/// The arguments of `AddPinhole` for `client`'s `port`: from any remote
/// host and port, `protocol` as its IANA number.
pub(crate) fn add_args(
    client: Ipv6Addr,
    port: u16,
    protocol: Protocol,
    lease: u32,
) -> [(&'static str, String); 6] {
    let proto = match protocol {
        Protocol::Tcp => 6,
        Protocol::Udp => 17,
    };
    [
        ("RemoteHost", String::new()),
        ("RemotePort", "0".into()),
        ("InternalClient", client.to_string()),
        ("InternalPort", port.to_string()),
        ("Protocol", proto.to_string()),
        ("LeaseTime", lease.clamp(1, MAX_LEASE).to_string()),
    ]
}

/// `AddPinhole`: the pinhole's `UniqueID`.
pub(crate) fn add_pinhole(
    s: &Service,
    client: Ipv6Addr,
    port: u16,
    protocol: Protocol,
    lease: u32,
) -> Result<u16, MapError> {
    parse_unique_id(&igd::call(
        s,
        "AddPinhole",
        &add_args(client, port, protocol, lease),
    )?)
}

/// `UpdatePinhole`: a new lease for pinhole `id`.
pub(crate) fn update_pinhole(s: &Service, id: u16, lease: u32) -> Result<(), MapError> {
    igd::call(
        s,
        "UpdatePinhole",
        &[
            ("UniqueID", id.to_string()),
            ("NewLeaseTime", lease.clamp(1, MAX_LEASE).to_string()),
        ],
    )
    .map(|_| ())
}

/// `DeletePinhole`.
pub(crate) fn delete_pinhole(s: &Service, id: u16) -> Result<(), MapError> {
    igd::call(s, "DeletePinhole", &[("UniqueID", id.to_string())]).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// miniupnpd 2.3.1's description, cut to the WAN connection device.
    const DESC: &str = r#"<?xml version="1.0"?><root xmlns="urn:schemas-upnp-org:device-1-0">
<device><deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:2</deviceType><deviceList><device>
<deviceType>urn:schemas-upnp-org:device:WANDevice:2</deviceType><deviceList><device>
<deviceType>urn:schemas-upnp-org:device:WANConnectionDevice:2</deviceType><serviceList>
<service><serviceType>urn:schemas-upnp-org:service:WANIPConnection:2</serviceType>
<controlURL>/ctl/IPConn</controlURL></service>
<service><serviceType>urn:schemas-upnp-org:service:WANIPv6FirewallControl:1</serviceType>
<serviceId>urn:upnp-org:serviceId:WANIPv6Firewall1</serviceId><SCPDURL>/WANIP6FC.xml</SCPDURL>
<controlURL>/ctl/IP6FCtl</controlURL></service></serviceList></device></deviceList></device></deviceList>
</device></root>"#;

    #[test]
    fn the_firewall_service_is_found_in_an_igd2_description() {
        let s = igd::parse_service(
            DESC,
            "http://[fd77::1]:40513/rootDesc.xml",
            &[FIREWALL_SERVICE],
        )
        .expect("found")
        .expect("valid");
        assert_eq!(s.service_type, FIREWALL_SERVICE);
        assert_eq!(s.control_url, "http://[fd77::1]:40513/ctl/IP6FCtl");
        // An IGD v1 description has none.
        let v1 = DESC.replace("WANIPv6FirewallControl", "Other");
        assert!(igd::parse_service(&v1, "http://[fd77::1]/", &[FIREWALL_SERVICE]).is_none());
    }

    #[test]
    fn soap_arguments_and_answers() {
        let client: Ipv6Addr = "fd77::2".parse().unwrap();
        let args = add_args(client, 6881, Protocol::Udp, 999_999);
        let e = igd::envelope(FIREWALL_SERVICE, "AddPinhole", &args);
        assert!(e.contains(
            "<RemoteHost></RemoteHost><RemotePort>0</RemotePort>\
             <InternalClient>fd77::2</InternalClient><InternalPort>6881</InternalPort>\
             <Protocol>17</Protocol><LeaseTime>86400</LeaseTime>"
        ));
        assert_eq!(add_args(client, 6881, Protocol::Tcp, 20)[4].1, "6");
        let ok = "<s:Envelope><s:Body><u:AddPinholeResponse xmlns:u=\"urn:x\">\r\n\
                  <UniqueID>7</UniqueID>\r\n</u:AddPinholeResponse></s:Body></s:Envelope>";
        assert_eq!(parse_unique_id(ok).expect("id"), 7);
        // Hostile answers: refused, never a panic.
        for bad in [
            "<UniqueID>65536</UniqueID>",
            "<UniqueID>-1</UniqueID>",
            "<UniqueID>seven</UniqueID>",
            "<UniqueID>",
            "",
        ] {
            assert!(
                matches!(parse_unique_id(bad), Err(MapError::Refused(_))),
                "{bad}"
            );
        }
        let st = "<u:GetFirewallStatusResponse><FirewallEnabled>1</FirewallEnabled>\
                  <InboundPinholeAllowed>0</InboundPinholeAllowed></u:GetFirewallStatusResponse>";
        assert_eq!(
            parse_status(st).expect("status"),
            FirewallStatus {
                enabled: true,
                inbound_allowed: false
            }
        );
        assert!(parse_status("<FirewallEnabled>maybe</FirewallEnabled>").is_err());
    }
}
