//! Nova notification bodies: the envelope with its `_context_*` fields and the
//! payloads of instance, exists and scheduler notifications, with the fields and
//! formats Nova (Icehouse/Juno era, as StackTach saw it) used.

use super::instance::{Instance, RequestContext, VmState, FLAVORS, OPERATING_SYSTEMS};
use super::Catalog;
use chrono::{DateTime, Utc};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Map, Value};

/// A datetime as Python's `str(datetime)` printed it (how Nova's payloads and
/// envelopes carry them): `YYYY-MM-DD HH:MM:SS.ffffff`, without the fraction when it
/// is zero.
pub fn format_timestamp(at: &DateTime<Utc>) -> String {
    let micros = at.timestamp_subsec_micros();
    if micros == 0 {
        at.format("%Y-%m-%d %H:%M:%S").to_string()
    } else {
        format!("{}.{micros:06}", at.format("%Y-%m-%d %H:%M:%S"))
    }
}

fn opt_timestamp(at: Option<DateTime<Utc>>) -> Value {
    Value::String(at.map(|t| format_timestamp(&t)).unwrap_or_default())
}

/// A random (version 4) UUID drawn from the generator's RNG.
pub fn uuid(rng: &mut ChaCha8Rng) -> String {
    uuid::Builder::from_random_bytes(rng.gen::<[u8; 16]>())
        .into_uuid()
        .to_string()
}

/// 32 hex digits (Nova's `_unique_id`, auth tokens).
pub fn hex32(rng: &mut ChaCha8Rng) -> String {
    format!("{:032x}", rng.gen::<u128>())
}

pub fn ipv4(rng: &mut ChaCha8Rng) -> String {
    let b: [u8; 4] = rng.gen();
    format!("{}.{}.{}.{}", 23 + b[0] % 200, b[1], b[2], 1 + b[3] % 254)
}

pub fn ipv6(rng: &mut ChaCha8Rng) -> String {
    let w: [u16; 5] = rng.gen();
    format!(
        "2001:4800:{:x}:{:x}:{:x}:{:x}:{:x}:{:x}",
        w[0] & 0x0fff,
        w[1],
        0xbe76 ^ (w[2] & 0xff),
        w[3],
        w[4],
        1 + (w[0] >> 12)
    )
}

/// The envelope every notification shares.
pub(crate) fn envelope(
    rng: &mut ChaCha8Rng,
    event_type: &str,
    publisher_id: String,
    at: DateTime<Utc>,
    ctx: &RequestContext,
    payload: Map<String, Value>,
) -> Value {
    let roles: Value = if ctx.is_admin {
        json!(["admin"])
    } else {
        json!([
            "checkmate",
            "object-store:default",
            "compute:default",
            "identity:user-admin"
        ])
    };
    json!({
        "_context_auth_token": ctx.auth_token,
        "_context_glance_api_servers": null,
        "_context_instance_lock_checked": false,
        "_context_is_admin": ctx.is_admin,
        "_context_project_id": ctx.tenant_id,
        "_context_project_name": ctx.tenant_id,
        "_context_quota_class": null,
        "_context_read_deleted": "no",
        "_context_remote_address": ctx.remote_address,
        "_context_request_id": ctx.request_id,
        "_context_roles": roles,
        "_context_service_catalog": [],
        "_context_tenant": ctx.tenant_id,
        "_context_timestamp": format_timestamp(&ctx.timestamp),
        "_context_user": ctx.user_id,
        "_context_user_id": ctx.user_id,
        "_context_user_name": ctx.user_id,
        "_unique_id": hex32(rng),
        "event_type": event_type,
        "message_id": uuid(rng),
        "payload": Value::Object(payload),
        "priority": "INFO",
        "publisher_id": publisher_id,
        "timestamp": format_timestamp(&at),
    })
}

/// `image_meta` of an instance booted from `image`.
fn image_meta(catalog: &Catalog, inst: &Instance) -> Value {
    let image = &catalog.images[inst.image];
    let os = &OPERATING_SYSTEMS[image.os];
    let flavor = &FLAVORS[inst.flavor];
    json!({
        "auto_disk_config": if os.os_type == "windows" { "False" } else { "True" },
        "base_image_ref": image.id,
        "cache_in_nova": "True",
        "container_format": "ovf",
        "disk_format": "vhd",
        "image_type": image.image_type,
        "min_disk": flavor.root_gb.to_string(),
        "min_ram": os.min_ram.to_string(),
        "org.openstack__1__architecture": os.architecture,
        "org.openstack__1__os_distro": os.org_distro,
        "org.openstack__1__os_version": os.version,
        "os_distro": os.distro,
        "os_type": os.os_type,
        "os_version": os.version,
        "vm_mode": "hvm",
        "xenapi_image_compression_level": "1",
    })
}

/// The instance fields every `compute.instance.*` payload carries
/// (`notify_about_instance_usage`'s "usage info").
pub(crate) fn instance_info(catalog: &Catalog, inst: &Instance) -> Map<String, Value> {
    let image = &catalog.images[inst.image];
    let os = &OPERATING_SYSTEMS[image.os];
    let flavor = &FLAVORS[inst.flavor];
    let deleted_at = opt_timestamp(inst.deleted_at);
    let payload = json!({
        "access_ip_v4": inst.access_ip_v4,
        "access_ip_v6": inst.access_ip_v6,
        "architecture": os.architecture,
        "availability_zone": null,
        "cell_name": "",
        "created_at": format_timestamp(&inst.created_at),
        "deleted_at": deleted_at,
        "disk_gb": flavor.root_gb + flavor.ephemeral_gb,
        "display_name": inst.display_name,
        "ephemeral_gb": flavor.ephemeral_gb,
        "host": catalog.hosts[inst.host],
        "hostname": inst.hostname,
        "image_meta": image_meta(catalog, inst),
        "image_ref_url": format!("http://{}:9292/images/{}", catalog.glance_ip, image.id),
        "instance_flavor_id": flavor.flavorid,
        "instance_id": inst.id,
        "instance_type": flavor.name,
        "instance_type_id": flavor.id,
        "kernel_id": "",
        "launched_at": opt_timestamp(inst.launched_at),
        "memory_mb": flavor.memory_mb,
        "metadata": {},
        "node": format!("xs-{}", catalog.hosts[inst.host]),
        "os_type": os.os_type,
        "progress": "",
        "ramdisk_id": "",
        "reservation_id": inst.reservation_id,
        "root_gb": flavor.root_gb,
        "state": inst.vm_state.as_str(),
        "state_description": inst.task_state.unwrap_or(""),
        "tenant_id": inst.tenant_id,
        "terminated_at": deleted_at,
        "user_id": inst.user_id,
        "vcpus": flavor.vcpus,
    });
    match payload {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

fn fixed_ips(inst: &Instance) -> Value {
    json!([{
        "address": inst.fixed_ip,
        "floating_ips": [],
        "label": "private",
        "meta": {},
        "type": "fixed",
        "version": 4,
        "vif_mac": format!(
            "bc:76:4e:{}:{}:{}",
            inst.id.get(0..2).unwrap_or("00"),
            inst.id.get(2..4).unwrap_or("00"),
            inst.id.get(4..6).unwrap_or("00")
        ),
    }])
}

fn bandwidth(inst: &Instance) -> Value {
    json!({
        "private": {"bw_in": inst.bw_public_in / 7, "bw_out": inst.bw_public_out / 5},
        "public": {"bw_in": inst.bw_public_in, "bw_out": inst.bw_public_out},
    })
}

/// `compute.instance.update`: the instance after the change, with the states before.
pub(crate) fn update_payload(
    catalog: &Catalog,
    inst: &Instance,
    old_state: VmState,
    old_task: Option<&'static str>,
    audit: (DateTime<Utc>, DateTime<Utc>),
) -> Map<String, Value> {
    let mut p = instance_info(catalog, inst);
    p.insert(
        "audit_period_beginning".into(),
        format_timestamp(&audit.0).into(),
    );
    p.insert(
        "audit_period_ending".into(),
        format_timestamp(&audit.1).into(),
    );
    p.insert("bandwidth".into(), bandwidth(inst));
    p.insert("old_state".into(), old_state.as_str().into());
    p.insert("old_task_state".into(), old_task.into());
    p.insert("new_task_state".into(), inst.task_state.into());
    p
}

/// `compute.instance.<op>.start` / `.end`, with the extra fields Nova adds per
/// operation.
pub(crate) fn operation_payload(
    catalog: &Catalog,
    inst: &Instance,
    name: &str,
    end: bool,
    new_flavor: Option<usize>,
) -> Map<String, Value> {
    let mut p = instance_info(catalog, inst);
    let image_name = &catalog.images[inst.image].name;
    match name {
        "create" => {
            p.insert("image_name".into(), image_name.clone().into());
            p.insert("message".into(), if end { "Success" } else { "" }.into());
            if end {
                p.insert("fixed_ips".into(), fixed_ips(inst));
            }
        }
        "rebuild" => {
            p.insert("image_name".into(), image_name.clone().into());
            if end {
                p.insert("fixed_ips".into(), fixed_ips(inst));
            }
        }
        "rescue" => {
            p.insert(
                "rescue_image_name".into(),
                format!("rescue-{image_name}").into(),
            );
            p.insert("fixed_ips".into(), fixed_ips(inst));
        }
        "resize.prep" if end => {
            if let Some(f) = new_flavor {
                p.insert("new_instance_type".into(), FLAVORS[f].name.into());
                p.insert("new_instance_type_id".into(), FLAVORS[f].id.into());
            }
        }
        "resize" | "finish_resize" | "unrescue" => {
            p.insert("fixed_ips".into(), fixed_ips(inst));
        }
        "resize.confirm" if end => {
            p.insert("fixed_ips".into(), fixed_ips(inst));
        }
        _ => {}
    }
    p
}

/// `compute.instance.exists` for the audit period `audit`.
pub(crate) fn exists_payload(
    catalog: &Catalog,
    inst: &Instance,
    audit: (DateTime<Utc>, DateTime<Utc>),
) -> Map<String, Value> {
    let mut p = instance_info(catalog, inst);
    p.insert(
        "audit_period_beginning".into(),
        format_timestamp(&audit.0).into(),
    );
    p.insert(
        "audit_period_ending".into(),
        format_timestamp(&audit.1).into(),
    );
    p.insert("bandwidth".into(), bandwidth(inst));
    p
}

/// `scheduler.run_instance.<phase>`: the request spec (trimmed to the fields that
/// matter), plus the chosen host once scheduled.
pub(crate) fn scheduler_payload(
    catalog: &Catalog,
    inst: &Instance,
    phase: &str,
    weight: f64,
) -> Map<String, Value> {
    let image = &catalog.images[inst.image];
    let os = &OPERATING_SYSTEMS[image.os];
    let flavor = &FLAVORS[inst.flavor];
    let request_spec = json!({
        "block_device_mapping": [{
            "boot_index": 0,
            "delete_on_termination": true,
            "destination_type": "local",
            "device_type": "disk",
            "image_id": image.id,
            "instance_uuid": inst.id,
            "source_type": "image",
        }],
        "image": {
            "container_format": "ovf",
            "disk_format": "vhd",
            "id": image.id,
            "min_disk": flavor.root_gb,
            "min_ram": os.min_ram,
            "name": image.name,
            "properties": {
                "auto_disk_config": "True",
                "image_type": image.image_type,
                "org.openstack__1__architecture": os.architecture,
                "org.openstack__1__os_distro": os.org_distro,
                "org.openstack__1__os_version": os.version,
                "os_type": os.os_type,
            },
            "status": "active",
        },
        "instance_properties": {
            "architecture": os.architecture,
            "created_at": format_timestamp(&inst.created_at),
            "display_name": inst.display_name,
            "ephemeral_gb": flavor.ephemeral_gb,
            "hostname": inst.hostname,
            "image_ref": image.id,
            "instance_type_id": flavor.id,
            "launch_index": 0,
            "memory_mb": flavor.memory_mb,
            "os_type": os.os_type,
            "power_state": 0,
            "project_id": inst.tenant_id,
            "reservation_id": inst.reservation_id,
            "root_gb": flavor.root_gb,
            "task_state": "scheduling",
            "user_id": inst.user_id,
            "uuid": inst.id,
            "vcpus": flavor.vcpus,
            "vm_state": "building",
        },
        "instance_type": {
            "ephemeral_gb": flavor.ephemeral_gb,
            "flavorid": flavor.flavorid,
            "id": flavor.id,
            "memory_mb": flavor.memory_mb,
            "name": flavor.name,
            "root_gb": flavor.root_gb,
            "rxtx_factor": flavor.rxtx_factor,
            "swap": 0,
            "vcpu_weight": 10,
            "vcpus": flavor.vcpus,
        },
        "instance_uuids": [inst.id],
        "num_instances": 1,
        "security_group": ["default"],
    });
    let mut p = Map::new();
    p.insert("request_spec".into(), request_spec);
    if phase == "scheduled" {
        p.insert("instance_id".into(), inst.id.clone().into());
        p.insert(
            "weighted_host".into(),
            json!({"host": catalog.hosts[inst.host], "weight": weight}),
        );
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn timestamps_print_like_python() {
        let t = Utc.with_ymd_and_hms(2015, 2, 27, 0, 10, 0).unwrap();
        assert_eq!(format_timestamp(&t), "2015-02-27 00:10:00");
        let t = t + chrono::Duration::microseconds(912_000);
        assert_eq!(format_timestamp(&t), "2015-02-27 00:10:00.912000");
    }

    #[test]
    fn uuids_come_from_the_rng() {
        use rand::SeedableRng;
        let a = uuid(&mut ChaCha8Rng::seed_from_u64(9));
        let b = uuid(&mut ChaCha8Rng::seed_from_u64(9));
        assert_eq!(a, b);
        let parsed = uuid::Uuid::parse_str(&a).unwrap();
        assert_eq!(parsed.get_version_num(), 4);
    }
}
