//! The flags of the replayed peers (`--policy crane-ehpa`, `--policy phpa`), with their upstream
//! defaults, and their mapping onto [`SimSettings`].

use anyhow::bail;

use crate::{
    duration::HumanDuration,
    sim::{
        SimSettings,
        crane::Estimator,
        phpa::{HoltWintersParams, LinearParams, PhpaParams, SeriesOrder, phpa_default_behavior},
    },
};

/// Crane's estimator set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CraneEstimators {
    /// Crane's eight default FFT estimators; the backtest picks one at each update.
    Default,
    /// One FFT estimator with Crane's per-field defaults.
    Fft,
    /// The per-slot maximum estimator.
    MaxValue,
}

/// PHPA's models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PhpaModel {
    Linear,
    HoltWinters,
}

/// PHPA's Holt-Winters series order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PhpaOrder {
    /// Oldest first, as the models guide describes.
    Chronological,
    /// As the released code passes it (pruned history newest first, then the new value).
    AsReleased,
}

/// Flags of the replayed peers.
#[derive(Debug, Clone, clap::Args)]
pub struct PeerArgs {
    /// Crane EHPA's `marginFraction` (comma-separated, one replay each; `default` = Crane's default
    /// estimators, whose margin its backtest picks). Default `default`, or `default,0,0.1,0.2` with
    /// --frontier.
    #[arg(long, value_delimiter = ',')]
    pub crane_margin_fraction: Vec<String>,
    /// Crane's estimators.
    #[arg(long, value_enum, default_value = "default")]
    pub crane_estimators: CraneEstimators,
    /// Crane EHPA's `predictionWindowSeconds`: the HPA sees the largest prediction this far ahead.
    #[arg(long, allow_hyphen_values = true, default_value = "1h")]
    pub crane_prediction_window: HumanDuration,
    /// Crane DSP's `historyLength`.
    #[arg(long, allow_hyphen_values = true, default_value = "3d")]
    pub crane_history_length: HumanDuration,
    /// Crane DSP's `sampleInterval`.
    #[arg(long, allow_hyphen_values = true, default_value = "60s")]
    pub crane_sample_interval: HumanDuration,
    /// craned's `--model-update-interval`: how often the DSP prediction is recomputed.
    #[arg(long, allow_hyphen_values = true, default_value = "12h")]
    pub crane_model_update_interval: HumanDuration,
    /// PHPA's models (comma-separated), decided by `maximum` with the HPA's count.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "linear,holt-winters"
    )]
    pub phpa_models: Vec<PhpaModel>,
    /// PHPA linear `lookAhead`.
    #[arg(long, allow_hyphen_values = true, default_value = "10s")]
    pub phpa_look_ahead: HumanDuration,
    /// PHPA linear `historySize`.
    #[arg(long, default_value = "6")]
    pub phpa_history_size: usize,
    /// PHPA Holt-Winters `alpha` (level smoothing).
    #[arg(long, default_value = "0.9")]
    pub phpa_alpha: f64,
    /// PHPA Holt-Winters `beta` (trend smoothing).
    #[arg(long, default_value = "0.9")]
    pub phpa_beta: f64,
    /// PHPA Holt-Winters `gamma` (seasonal smoothing).
    #[arg(long, default_value = "0.9")]
    pub phpa_gamma: f64,
    /// PHPA Holt-Winters season: `seasonalPeriods` = season / sync period, and the model starts at the
    /// next multiple of it (`startInterval`).
    #[arg(long, allow_hyphen_values = true, default_value = "1d")]
    pub phpa_season: HumanDuration,
    /// PHPA Holt-Winters `storedSeasons`.
    #[arg(long, default_value = "4")]
    pub phpa_stored_seasons: usize,
    /// The order PHPA's Holt-Winters sees its history in.
    #[arg(long, value_enum, default_value = "chronological")]
    pub phpa_series_order: PhpaOrder,
}

/// Crane margins swept by `--frontier` unless given (`None` = Crane's default estimators).
const FRONTIER_CRANE_MARGINS: [Option<f64>; 4] = [None, Some(0.0), Some(0.1), Some(0.2)];

impl PeerArgs {
    /// The Crane replays' margins.
    pub fn crane_margins(&self, frontier: bool) -> anyhow::Result<Vec<Option<f64>>> {
        if self.crane_margin_fraction.is_empty() {
            return Ok(if frontier {
                FRONTIER_CRANE_MARGINS.to_vec()
            } else {
                vec![None]
            });
        }
        self.crane_margin_fraction
            .iter()
            .map(|text| match text.trim() {
                "default" => Ok(None),
                number => match number.parse::<f64>() {
                    Ok(m) if m.is_finite() && m > -1.0 => Ok(Some(m)),
                    _ => bail!("--crane-margin-fraction takes `default` or a number above -1, got {text:?}"),
                },
            })
            .collect()
    }

    /// Puts the peers' settings into `settings` (whose sync period is already set).
    pub fn apply(&self, settings: &mut SimSettings) -> anyhow::Result<()> {
        let crane = &mut settings.crane;
        crane.prediction_window = self.crane_prediction_window.0;
        crane.dsp.history_length = self.crane_history_length.0;
        crane.dsp.sample_interval = self.crane_sample_interval.0;
        crane.dsp.model_update_interval = self.crane_model_update_interval.0;
        crane.dsp.estimators = match self.crane_estimators {
            CraneEstimators::Default => Estimator::defaults(),
            CraneEstimators::Fft => vec![Estimator::fft(0.0)],
            CraneEstimators::MaxValue => vec![Estimator::MaxValue { margin_fraction: 0.0 }],
        };
        crane.dsp.check().map_err(|e| anyhow::anyhow!("--crane-*: {e}"))?;

        let sync = settings.sync_period.as_secs().max(1);
        let season = self.phpa_season.0;
        if season.as_secs() == 0 || !season.as_secs().is_multiple_of(sync) {
            bail!(
                "--phpa-season must be a whole number of sync periods ({sync} s), got {}",
                self.phpa_season
            );
        }
        let seasonal_periods = usize::try_from(season.as_secs() / sync).unwrap_or(usize::MAX);
        let params = PhpaParams {
            linear: self
                .phpa_models
                .contains(&PhpaModel::Linear)
                .then_some(LinearParams {
                    look_ahead: self.phpa_look_ahead.0,
                    history_size: self.phpa_history_size,
                }),
            holt_winters: self
                .phpa_models
                .contains(&PhpaModel::HoltWinters)
                .then_some(HoltWintersParams {
                    alpha: self.phpa_alpha,
                    beta: self.phpa_beta,
                    gamma: self.phpa_gamma,
                    seasonal_periods,
                    stored_seasons: self.phpa_stored_seasons,
                    start_interval: Some(season),
                    order: match self.phpa_series_order {
                        PhpaOrder::Chronological => SeriesOrder::Chronological,
                        PhpaOrder::AsReleased => SeriesOrder::AsReleased,
                    },
                }),
            behavior: phpa_default_behavior(),
        };
        params.check().map_err(|e| anyhow::anyhow!("--phpa-*: {e}"))?;
        settings.phpa = Some(params);
        Ok(())
    }
}
