package synth

// Scenario names.
const (
	Locust = "locust" // (a) the original Locust traffic
	Spikes = "spikes" // (b) Gaussian noise with rare 4–8σ spikes and dips
	Shifts = "shifts" // (c) level shifts on a drifting signal
	Bursts = "bursts" // bursts of heavy-tailed noise
	Mixed  = "mixed"  // everything at once, with seasonality
)

// plainCPU is a signal with no anomalies at all: a level plus Gaussian noise.
var plainCPU = Signal{
	Name:  "cpu",
	Base:  Range{30, 70},
	Noise: Range{2, 6},
}

// Scenarios returns the standard scenarios, in report order.
func Scenarios() []Scenario {
	return []Scenario{
		{
			Name: Locust,
			Description: "The original load test: per device rps base U(80,120), noise N(0,15); " +
				"1 value in 6 anomalous, half +U(150,300), half −U(100,200), clipped at 0. cpu is plain Gaussian noise.",
			Signals: []Signal{
				{
					Name: "rps", Base: Range{80, 120}, Noise: Range{15, 15}, ClipAtZero: true,
					SpikeRate: 1.0 / 6, UpShare: 0.5, Up: Range{150, 300}, Down: Range{100, 200},
				},
				plainCPU,
			},
		},
		{
			Name:        Spikes,
			Description: "Gaussian noise with 2% spikes and dips of 4–8σ (half each). cpu is plain Gaussian noise.",
			Signals: []Signal{
				{
					Name: "temp", Base: Range{18, 26}, Noise: Range{0.3, 1.0},
					SpikeRate: 0.02, UpShare: 0.5, Up: Range{4, 8}, Down: Range{4, 8}, SizesInSigma: true,
				},
				plainCPU,
			},
		},
		{
			Name: Shifts,
			Description: "Level shifts of ±U(4,8)σ every U{150..350} values on a slowly drifting signal " +
				"(±2σ per 1000 values). cpu drifts the same way and has a daily cycle (amplitude U(1,3)σ, 1440 values a day), no anomalies.",
			Signals: []Signal{
				{
					Name: "temp", Base: Range{18, 26}, Noise: Range{0.3, 1.0}, Drift: Range{-2, 2},
					ShiftGap: IntRange{150, 350}, ShiftSize: Range{4, 8},
				},
				{
					Name: "cpu", Base: Range{30, 70}, Noise: Range{2, 6}, Drift: Range{-2, 2},
					SeasonAmp: Range{1, 3}, SeasonPeriod: 1440,
				},
			},
		},
		{
			Name: Bursts,
			Description: "Bursts of U{10..30} values of heavy-tailed noise (3σ·t with 2 degrees of freedom) " +
				"every U{150..350} values; every value in a burst is labelled anomalous. cpu is plain Gaussian noise.",
			Signals: []Signal{
				{
					Name: "vibration", Base: Range{1, 2}, Noise: Range{0.05, 0.1},
					BurstGap: IntRange{150, 350}, BurstLen: IntRange{10, 30}, BurstScale: 3, BurstDF: 2,
				},
				plainCPU,
			},
		},
		{
			Name: Mixed,
			Description: "All kinds at once on a drifting, daily-cycling signal: 1% spikes and dips of 3–8σ, " +
				"level shifts of ±U(2,8)σ every U{300..600} values, bursts as in bursts every U{400..800} values.",
			Signals: []Signal{
				{
					Name: "temp", Base: Range{18, 26}, Noise: Range{0.3, 1.0}, Drift: Range{-2, 2},
					SeasonAmp: Range{1, 3}, SeasonPeriod: 1440,
					SpikeRate: 0.01, UpShare: 0.5, Up: Range{3, 8}, Down: Range{3, 8}, SizesInSigma: true,
					ShiftGap: IntRange{300, 600}, ShiftSize: Range{2, 8},
					BurstGap: IntRange{400, 800}, BurstLen: IntRange{10, 30}, BurstScale: 3, BurstDF: 2,
				},
				{
					Name: "cpu", Base: Range{30, 70}, Noise: Range{2, 6}, Drift: Range{-2, 2},
					SeasonAmp: Range{1, 3}, SeasonPeriod: 1440,
				},
			},
		},
	}
}
