//! Bad input never panics: it returns an `enma::Error` that names the problem.

use enma::{DType, Error, Gpu, Tensor, ops, wgpu};

use crate::common::gpu;

#[test]
fn a_tensor_beyond_the_binding_limit_names_size_and_limit() {
    let g = gpu();
    let limit = g.adapter().limits.max_storage_buffer_binding_size;
    let n = (limit / 4 + 1) as usize;
    let e = Tensor::empty(&g, &[n], DType::F32).unwrap_err();
    assert!(matches!(e, Error::TooLarge { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains(&limit.to_string()) && msg.contains(&(n as u64 * 4).to_string()), "{msg}");
    let e = Tensor::empty(&g, &[usize::MAX, 4], DType::F32).unwrap_err();
    assert!(matches!(e, Error::Invalid { .. }), "{e:?}");
}

fn host_device(features: wgpu::Features, limits: wgpu::Limits) -> Option<(wgpu::Device, wgpu::Queue)> {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
    let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions::default())).ok()?;
    let limits =
        wgpu::Limits { max_immediate_size: limits.max_immediate_size, ..limits.using_resolution(adapter.limits()) };
    pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        required_features: features,
        required_limits: limits,
        ..Default::default()
    }))
    .ok()
}

#[test]
fn a_host_device_without_what_enma_needs_is_refused_with_a_list() {
    let Some((device, queue)) = host_device(wgpu::Features::empty(), wgpu::Limits::default()) else {
        panic!("no adapter for the host device");
    };
    let e = Gpu::from_device(device, queue).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::DeviceUnsupported { .. }), "{msg}");
    assert!(msg.contains("IMMEDIATES") && msg.contains("max_immediate_size"), "{msg}");
}

#[test]
fn a_host_device_with_the_requirements_runs_kernels() {
    let (device, queue) =
        host_device(enma::gpu::required_features(), enma::gpu::required_limits()).expect("host device");
    let g = Gpu::from_device(device.clone(), queue).unwrap();
    assert!(!g.adapter().owned);
    let a = Tensor::from_slice(&g, &[1.0, 2.0, 3.0, 4.0], &[2, 2]).unwrap();
    let c = ops::matmul(&a, &a, None, false, false).unwrap();
    assert_eq!(c.to_vec().unwrap(), [7.0, 10.0, 15.0, 22.0]);
    // the host still owns and can use its device
    let _buf = device.create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: 16,
        usage: wgpu::BufferUsages::STORAGE,
        mapped_at_creation: false,
    });
}

#[test]
fn a_lost_device_is_an_error_not_a_panic() {
    let g = gpu();
    let a = Tensor::from_slice(&g, &[1.0; 16], &[16]).unwrap();
    g.device().destroy();
    let r = ops::scale(&a, 2.0).and_then(|b| b.to_vec());
    let e = r.unwrap_err();
    assert!(matches!(e, Error::DeviceLost { .. } | Error::Gpu { .. } | Error::Readback(_)), "{e:?}");
}

#[test]
fn an_unknown_backend_name_is_an_error() {
    // Only meaningful when the environment does not override the backend.
    if std::env::var("WGPU_BACKEND").is_ok() {
        return;
    }
    let e = Gpu::new(enma::GpuOptions { backends: Some("glide".into()), adapter_name: None, tune: None }).unwrap_err();
    assert!(e.to_string().contains("glide"), "{e}");
    let e = Gpu::new(enma::GpuOptions { backends: None, adapter_name: Some("no-such-adapter-xyz".into()), tune: None });
    if std::env::var("WGPU_ADAPTER_NAME").is_err() {
        let msg = e.unwrap_err().to_string();
        assert!(msg.contains("no GPU adapter") && msg.contains("mesa-vulkan-drivers"), "{msg}");
    }
}

#[test]
fn a_lost_host_device_is_an_error_not_a_panic() {
    // wgpu's default uncaptured-error handler panics; enma must catch errors on a host's device.
    let (device, queue) =
        host_device(enma::gpu::required_features(), enma::gpu::required_limits()).expect("host device");
    let g = Gpu::from_device(device.clone(), queue).unwrap();
    let a = Tensor::from_slice(&g, &[1.0; 16], &[16]).unwrap();
    ops::scale(&a, 2.0).unwrap().to_vec().unwrap(); // the pipeline is cached now
    device.destroy();
    let r = ops::scale(&a, 2.0).and_then(|b| b.to_vec());
    assert!(r.is_err());
    assert!(
        ops::unary(&a, ops::UnaryOp::Exp).is_err()
            || ops::unary(&a, ops::UnaryOp::Exp).and_then(|b| b.to_vec()).is_err()
    );
    assert!(Tensor::from_slice(&g, &[1.0; 4], &[4]).and_then(|t| t.to_vec()).is_err());
}
