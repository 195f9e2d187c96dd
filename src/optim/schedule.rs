//! Learning-rate schedules.

/// Linear warm-up from 0 to `base` over `warmup` steps, then cosine decay to `floor` at
/// `total` steps (constant `floor` afterwards).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LrSchedule {
    pub base: f32,
    pub warmup: u64,
    pub total: u64,
    pub floor: f32,
}

impl LrSchedule {
    /// A constant rate.
    pub fn constant(lr: f32) -> LrSchedule {
        LrSchedule { base: lr, warmup: 0, total: 0, floor: lr }
    }

    /// The rate at `step` (0-based).
    pub fn at(&self, step: u64) -> f32 {
        if step < self.warmup {
            return self.base * (step + 1) as f32 / self.warmup as f32;
        }
        if self.total <= self.warmup || step >= self.total {
            return if self.total <= self.warmup { self.base } else { self.floor };
        }
        let t = (step - self.warmup) as f64 / (self.total - self.warmup) as f64;
        let cos = 0.5 * (1.0 + (std::f64::consts::PI * t).cos());
        (self.floor as f64 + (self.base - self.floor) as f64 * cos) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_cosine_to_the_floor() {
        let s = LrSchedule { base: 1e-3, warmup: 10, total: 110, floor: 1e-5 };
        assert!((s.at(0) - 1e-4).abs() < 1e-9);
        assert!((s.at(9) - 1e-3).abs() < 1e-9);
        assert!((s.at(10) - 1e-3).abs() < 1e-9);
        assert!((s.at(60) - (1e-5 + (1e-3 - 1e-5) * 0.5)).abs() < 1e-8);
        assert!((s.at(110) - 1e-5).abs() < 1e-12);
        assert!((s.at(10_000) - 1e-5).abs() < 1e-12);
        for k in 10..110 {
            assert!(s.at(k + 1) <= s.at(k), "decreasing after warm-up");
        }
        assert_eq!(LrSchedule::constant(0.1).at(12345), 0.1);
    }
}
