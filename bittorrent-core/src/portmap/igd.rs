//! UPnP Internet Gateway Device control: the device description (which
//! service to use and its control URL), and the SOAP actions
//! `GetExternalIPAddress`, `AddPortMapping` and `DeletePortMapping` of
//! `WANIPConnection` (1 or 2) or `WANPPPConnection:1`.
//!
//! Over `ureq` (the crate's HTTP client), every request with a timeout.
//! Everything the device sends is bounded: the description at
//! [`MAX_DESCRIPTION`] bytes, a SOAP answer at [`MAX_SOAP`]; at most
//! [`MAX_REDIRECTS`] redirects, each to the same host; and the control URL
//! must be on the device itself (the host that answered the search), so
//! a hostile answer cannot point our requests off the LAN.

use super::{MapError, Protocol};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};
use std::sync::OnceLock;
use std::time::Duration;

/// Largest device description read.
pub(crate) const MAX_DESCRIPTION: u64 = 64 * 1024;
/// Largest SOAP answer read.
pub(crate) const MAX_SOAP: u64 = 16 * 1024;
/// Redirects followed when fetching the description (same host only).
pub(crate) const MAX_REDIRECTS: usize = 2;
/// Timeout of one HTTP request to the gateway.
pub(crate) const HTTP_TIMEOUT: Duration = Duration::from_secs(4);

/// The services that map ports, best first.
const SERVICES: [&str; 3] = [
    "urn:schemas-upnp-org:service:WANIPConnection:2",
    "urn:schemas-upnp-org:service:WANIPConnection:1",
    "urn:schemas-upnp-org:service:WANPPPConnection:1",
];

/// A gateway's port-mapping service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Service {
    /// Its service type (the SOAP namespace).
    pub(crate) service_type: String,
    /// `http://IP:PORT/path` of its control point.
    pub(crate) control_url: String,
}

/// `(ip, port)` of an `http://IPv4[:PORT]/...` URL; `None` for any other
/// form (names, IPv6, other schemes, user info).
pub(crate) fn url_host(url: &str) -> Option<SocketAddrV4> {
    match url_addr(url)? {
        SocketAddr::V4(a) => Some(a),
        SocketAddr::V6(_) => None,
    }
}

/// `(ip, port)` of an `http://IPv4[:PORT]/...` or `http://[IPv6][:PORT]/...`
/// URL; `None` for any other form (names, other schemes, user info, a
/// zone index, a link-local IPv6 address: it would need one).
pub(crate) fn url_addr(url: &str) -> Option<SocketAddr> {
    let rest = url.strip_prefix("http://")?;
    let hostport = rest.split(['/', '?', '#']).next()?;
    if hostport.contains('@') || hostport.contains('%') {
        return None;
    }
    if let Some(v6) = hostport.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        let port = match after {
            "" => 80,
            p => p.strip_prefix(':')?.parse::<u16>().ok()?,
        };
        let ip = host.parse::<Ipv6Addr>().ok()?;
        if super::gateway::is_link_local(ip) || ip.to_ipv4_mapped().is_some() {
            return None;
        }
        return Some(SocketAddr::new(IpAddr::V6(ip), port));
    }
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().ok()?),
        None => (hostport, 80),
    };
    Some(SocketAddr::V4(SocketAddrV4::new(
        host.parse::<Ipv4Addr>().ok()?,
        port,
    )))
}

/// The text between `<tag>` and the next `</tag>` from `from` on, and the
/// index after that closing tag. Namespace prefixes (`<u:tag>`) and
/// attributes are accepted; tags are not nested in themselves here.
pub(crate) fn element<'a>(doc: &'a str, tag: &str, from: usize) -> Option<(&'a str, usize)> {
    let local = |name: &'a str| name.rsplit(':').next().unwrap_or(name);
    let mut at = from;
    let body_start = loop {
        let open = doc.get(at..)?.find('<')? + at;
        let close = doc.get(open..)?.find('>')? + open;
        let name = doc[open + 1..close].split_whitespace().next().unwrap_or("");
        at = close + 1;
        if !name.starts_with('/') && local(name.trim_end_matches('/')) == tag {
            break at;
        }
    };
    let mut search = body_start;
    loop {
        let c = doc.get(search..)?.find("</")? + search;
        let e = doc.get(c..)?.find('>')? + c;
        if local(doc[c + 2..e].trim()) == tag {
            return Some((&doc[body_start..c], e + 1));
        }
        search = e + 1;
    }
}

/// The port-mapping service of a device description fetched from
/// `location` (relative control URLs resolve against `URLBase` or it).
#[cfg(test)]
pub(crate) fn parse_description(doc: &str, location: &str) -> Result<Service, String> {
    parse_service(doc, location, &SERVICES).unwrap_or_else(|| {
        Err("the device description has no WANIPConnection or WANPPPConnection service".into())
    })
}

/// The first of the `wanted` service types (best first) in a device
/// description fetched from `location`: `None` when it has none of them.
pub(crate) fn parse_service(
    doc: &str,
    location: &str,
    wanted: &[&str],
) -> Option<Result<Service, String>> {
    let mut services = Vec::new();
    let mut at = 0;
    while let Some((body, next)) = element(doc, "service", at) {
        at = next;
        let st = element(body, "serviceType", 0).map(|(t, _)| t.trim());
        let cu = element(body, "controlURL", 0).map(|(t, _)| t.trim());
        if let (Some(st), Some(cu)) = (st, cu) {
            services.push((st.to_string(), cu.to_string()));
        }
        if services.len() > 64 {
            break;
        }
    }
    let (service_type, control) = wanted
        .iter()
        .find_map(|want| services.iter().find(|(st, _)| st == want))
        .cloned()?;
    let base = element(doc, "URLBase", 0)
        .map(|(b, _)| b.trim().to_string())
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| location.to_string());
    Some(
        resolve(&base, &control)
            .ok_or_else(|| format!("control URL {control:?} is not an http://IP URL"))
            .map(|control_url| Service {
                service_type,
                control_url,
            }),
    )
}

/// `rel` against `base` (both `http://IP...`).
fn resolve(base: &str, rel: &str) -> Option<String> {
    if rel.starts_with("http://") {
        url_addr(rel)?;
        return Some(rel.to_string());
    }
    if rel.contains("://") {
        return None;
    }
    let host = url_addr(base)?;
    let path = if rel.starts_with('/') {
        rel.to_string()
    } else {
        format!("/{rel}")
    };
    Some(format!("http://{host}{path}"))
}

/// Our agent: no redirects followed by itself (we follow same-host ones),
/// no proxy, answers with any status read (SOAP faults come as 500).
fn agent() -> &'static ureq::Agent {
    static AGENT: OnceLock<ureq::Agent> = OnceLock::new();
    AGENT.get_or_init(|| {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .proxy(None)
            .timeout_global(Some(HTTP_TIMEOUT))
            .max_response_header_size(8 * 1024)
            .max_idle_connections(0)
            .max_idle_connections_per_host(0)
            .user_agent(concat!("peer/", env!("CARGO_PKG_VERSION"), " UPnP/1.1"))
            .build()
            .new_agent()
    })
}

fn http_error(what: &str, e: ureq::Error) -> MapError {
    match e {
        ureq::Error::BodyExceedsLimit(n) => {
            MapError::Refused(format!("{what}: larger than {n} bytes: refused"))
        }
        e => MapError::Http(format!("{what}: {e}")),
    }
}

/// Fetch the description at `location` and find its service. The control
/// URL must be on the host `device` (the one that answered the search).
pub(crate) fn fetch_service(location: &str, device: IpAddr) -> Result<Service, MapError> {
    fetch_service_of(location, device, &SERVICES, || {
        "the device description has no WANIPConnection or WANPPPConnection service".into()
    })
}

/// [`fetch_service`] for the first of the `wanted` service types;
/// `missing` says what is missing when the device has none of them.
pub(crate) fn fetch_service_of(
    location: &str,
    device: IpAddr,
    wanted: &[&str],
    missing: impl Fn() -> String,
) -> Result<Service, MapError> {
    let mut url = location.to_string();
    for _ in 0..=MAX_REDIRECTS {
        let mut resp = agent()
            .get(&url)
            .call()
            .map_err(|e| http_error("device description", e))?;
        let status = resp.status().as_u16();
        if (300..400).contains(&status) {
            let to = resp
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
                .ok_or_else(|| {
                    MapError::Refused("device description: redirect without Location".into())
                })?;
            let next = resolve(&url, &to).ok_or_else(|| {
                MapError::Refused(format!("device description: redirect to {to:?}: refused"))
            })?;
            if url_addr(&next).map(|h| h.ip()) != Some(device) {
                return Err(MapError::Refused(format!(
                    "device description: redirect to another host ({next}): refused"
                )));
            }
            url = next;
            continue;
        }
        if status != 200 {
            return Err(MapError::Http(format!("device description: HTTP {status}")));
        }
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_DESCRIPTION)
            .read_to_vec()
            .map_err(|e| http_error("device description", e))?;
        let doc = String::from_utf8_lossy(&body);
        let service = parse_service(&doc, &url, wanted)
            .ok_or_else(|| MapError::Refused(missing()))?
            .map_err(MapError::Refused)?;
        let host = url_addr(&service.control_url).map(|h| h.ip());
        if host != Some(device) {
            return Err(MapError::Refused(format!(
                "control URL {} is not on the gateway {device}: refused",
                service.control_url
            )));
        }
        return Ok(service);
    }
    Err(MapError::Refused(format!(
        "device description: more than {MAX_REDIRECTS} redirects: refused"
    )))
}

/// Escape text for an XML element.
fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The SOAP envelope for `action` with `args`.
pub(crate) fn envelope(service_type: &str, action: &str, args: &[(&str, String)]) -> String {
    let mut body = String::new();
    for (k, v) in args {
        body.push_str(&format!("<{k}>{}</{k}>", xml_escape(v)));
    }
    format!(
        "<?xml version=\"1.0\"?>\r\n<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" \
         s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body>\
         <u:{action} xmlns:u=\"{service_type}\">{body}</u:{action}></s:Body></s:Envelope>\r\n"
    )
}

/// The outcome of a SOAP answer: `Ok(body)` for a success, else the UPnP
/// error code and description.
pub(crate) fn soap_outcome(status: u16, body: &str) -> Result<String, (u32, String)> {
    if status == 200 {
        return Ok(body.to_string());
    }
    let code = element(body, "errorCode", 0)
        .and_then(|(c, _)| c.trim().parse().ok())
        .unwrap_or(0);
    let desc = element(body, "errorDescription", 0)
        .map(|(d, _)| d.trim().chars().take(120).collect())
        .unwrap_or_else(|| format!("HTTP {status}"));
    Err((code, desc))
}

/// Call `action` on the service.
pub(crate) fn call(s: &Service, action: &str, args: &[(&str, String)]) -> Result<String, MapError> {
    let body = envelope(&s.service_type, action, args);
    let mut resp = agent()
        .post(&s.control_url)
        .header("SOAPAction", format!("\"{}#{action}\"", s.service_type))
        .content_type("text/xml; charset=\"utf-8\"")
        .send(body.as_bytes())
        .map_err(|e| http_error(action, e))?;
    let status = resp.status().as_u16();
    let text = resp
        .body_mut()
        .with_config()
        .limit(MAX_SOAP)
        .read_to_vec()
        .map_err(|e| http_error(action, e))?;
    soap_outcome(status, &String::from_utf8_lossy(&text))
        .map_err(|(code, desc)| MapError::Upnp { code, desc })
}

/// `GetExternalIPAddress`.
pub(crate) fn external_ip(s: &Service) -> Result<Ipv4Addr, MapError> {
    let body = call(s, "GetExternalIPAddress", &[])?;
    let ip = element(&body, "NewExternalIPAddress", 0)
        .map(|(t, _)| t.trim().to_string())
        .unwrap_or_default();
    ip.parse().map_err(|_| {
        MapError::Refused(format!(
            "the gateway reports no usable external address ({:?})",
            ip.chars().take(40).collect::<String>()
        ))
    })
}

/// `AddPortMapping` of `port` (external and internal) to `client`.
pub(crate) fn add_mapping(
    s: &Service,
    protocol: Protocol,
    port: u16,
    client: Ipv4Addr,
    lease: u32,
) -> Result<(), MapError> {
    call(
        s,
        "AddPortMapping",
        &[
            ("NewRemoteHost", String::new()),
            ("NewExternalPort", port.to_string()),
            ("NewProtocol", protocol.as_str().into()),
            ("NewInternalPort", port.to_string()),
            ("NewInternalClient", client.to_string()),
            ("NewEnabled", "1".into()),
            (
                "NewPortMappingDescription",
                format!("peer {}", protocol.as_str()),
            ),
            ("NewLeaseDuration", lease.to_string()),
        ],
    )
    .map(|_| ())
}

/// `DeletePortMapping`.
pub(crate) fn delete_mapping(s: &Service, protocol: Protocol, port: u16) -> Result<(), MapError> {
    call(
        s,
        "DeletePortMapping",
        &[
            ("NewRemoteHost", String::new()),
            ("NewExternalPort", port.to_string()),
            ("NewProtocol", protocol.as_str().into()),
        ],
    )
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DESC: &str = r#"<?xml version="1.0"?>
<root xmlns="urn:schemas-upnp-org:device-1-0"><device><serviceList>
<service><serviceType>urn:schemas-upnp-org:service:Layer3Forwarding:1</serviceType>
<controlURL>/ctl/L3F</controlURL></service></serviceList><deviceList><device><deviceList><device>
<serviceList><service><serviceType>urn:schemas-upnp-org:service:WANIPConnection:1</serviceType>
<serviceId>urn:upnp-org:serviceId:WANIPConn1</serviceId><controlURL>/ctl/IPConn</controlURL>
</service></serviceList></device></deviceList></device></deviceList></device></root>"#;

    #[test]
    fn urls() {
        assert_eq!(
            url_host("http://192.168.1.1:5000/x"),
            Some("192.168.1.1:5000".parse().expect("addr"))
        );
        assert_eq!(
            url_host("http://192.168.1.1"),
            Some("192.168.1.1:80".parse().expect("addr"))
        );
        for bad in [
            "https://192.168.1.1/",
            "http://router/",
            "http://a@192.168.1.1/",
            "http://[::1]:80/",
            "ftp://1.2.3.4/",
        ] {
            assert_eq!(url_host(bad), None, "{bad}");
        }
        // IPv6 hosts, for the pinholes; never a zone or a link-local one.
        assert_eq!(
            url_addr("http://[fd77::1]:40513/rootDesc.xml"),
            Some("[fd77::1]:40513".parse().expect("addr"))
        );
        assert_eq!(
            url_addr("http://[2001:db8::1]/x"),
            Some("[2001:db8::1]:80".parse().expect("addr"))
        );
        for bad in [
            "http://[fe80::1]:80/",
            "http://[fd77::1%25eth0]:80/",
            "http://[fd77::1]x/",
            "http://[::ffff:1.2.3.4]/",
            "http://[fd77::1/",
        ] {
            assert_eq!(url_addr(bad), None, "{bad}");
        }
        assert_eq!(
            resolve("http://[fd77::1]:5000/desc.xml", "/ctl/IP6FCtl").as_deref(),
            Some("http://[fd77::1]:5000/ctl/IP6FCtl")
        );
        assert_eq!(
            resolve("http://10.0.0.1:80/desc.xml", "ctl").as_deref(),
            Some("http://10.0.0.1:80/ctl")
        );
    }

    #[test]
    fn description_gives_the_wan_service() {
        let s = parse_description(DESC, "http://192.168.1.1:5000/rootDesc.xml").expect("service");
        assert_eq!(
            s.service_type,
            "urn:schemas-upnp-org:service:WANIPConnection:1"
        );
        assert_eq!(s.control_url, "http://192.168.1.1:5000/ctl/IPConn");
        // URLBase wins over the description's address.
        let with_base = DESC.replace(
            "<device><serviceList>",
            "<URLBase>http://192.168.1.1:49000</URLBase><device><serviceList>",
        );
        let s = parse_description(&with_base, "http://192.168.1.1:5000/d.xml").expect("service");
        assert_eq!(s.control_url, "http://192.168.1.1:49000/ctl/IPConn");
        // No WAN service.
        let none = DESC.replace("WANIPConnection", "Other");
        assert!(parse_description(&none, "http://192.168.1.1/").is_err());
        // Junk never panics.
        for junk in [
            "",
            "<",
            "<service>",
            "<service><serviceType>",
            "</service><service",
            "<<>>",
        ] {
            let _ = parse_description(junk, "http://192.168.1.1/");
        }
    }

    #[test]
    fn soap_envelope_and_faults() {
        let e = envelope(
            SERVICES[1],
            "DeletePortMapping",
            &[
                ("NewExternalPort", "6881".into()),
                ("NewProtocol", "TCP".into()),
            ],
        );
        assert!(e.contains(
            "<u:DeletePortMapping xmlns:u=\"urn:schemas-upnp-org:service:WANIPConnection:1\">"
        ));
        assert!(e.contains("<NewExternalPort>6881</NewExternalPort><NewProtocol>TCP</NewProtocol>"));
        let fault = "<s:Envelope><s:Body><s:Fault><detail><UPnPError xmlns=\"urn:schemas-upnp-org:control-1-0\">\
                     <errorCode>718</errorCode><errorDescription>ConflictInMappingEntry</errorDescription>\
                     </UPnPError></detail></s:Fault></s:Body></s:Envelope>";
        assert_eq!(
            soap_outcome(500, fault),
            Err((718, "ConflictInMappingEntry".to_string()))
        );
        let ok = "<s:Envelope><s:Body><u:GetExternalIPAddressResponse>\
                  <NewExternalIPAddress>84.124.73.14</NewExternalIPAddress>\
                  </u:GetExternalIPAddressResponse></s:Body></s:Envelope>";
        let body = soap_outcome(200, ok).expect("ok");
        assert_eq!(
            element(&body, "NewExternalIPAddress", 0).map(|(t, _)| t),
            Some("84.124.73.14")
        );
    }
}
