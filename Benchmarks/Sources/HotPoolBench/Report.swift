import Foundation
import Glibc

/// A bound a metric's median is held to.
enum Goal: Encodable, Sendable {
    case atMost(Double)
    case atLeast(Double)

    /// True if `value` is within the bound.
    func isMet(by value: Double) -> Bool {
        switch self {
        case .atMost(let bound): value <= bound
        case .atLeast(let bound): value >= bound
        }
    }

    /// The bound as the table shows it ("≤ 50").
    var text: String {
        switch self {
        case .atMost(let bound): "≤ \(formatted(bound))"
        case .atLeast(let bound): "≥ \(formatted(bound))"
        }
    }

    /// Encodes as `{"atMost": 50}` or `{"atLeast": 0.9}`.
    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .atMost(let bound): try container.encode(["atMost": bound])
        case .atLeast(let bound): try container.encode(["atLeast": bound])
        }
    }
}

extension [Metric] {
    /// Adds a sample to the metric `name` of `scenario`, made (last, in the order first added) if new.
    mutating func add(_ scenario: String, _ name: String, _ unit: String, _ value: Double) {
        if let index = firstIndex(where: { $0.scenario == scenario && $0.name == name }) { return self[index].samples.append(value) }
        append(Metric(scenario, name, unit))
        self[count - 1].samples.append(value)
    }
}

/// One figure of one scenario, with a sample per run.
struct Metric: Encodable, Sendable {
    var scenario: String
    var name: String
    var unit: String
    var goal: Goal?
    var samples: [Double] = []

    /// A metric with no samples yet; `goal`, if any, is what its median must meet.
    init(_ scenario: String, _ name: String, _ unit: String, goal: Goal? = nil) {
        self.scenario = scenario
        self.name = name
        self.unit = unit
        self.goal = goal
    }

    /// The middle sample (the mean of the middle two for an even count); NaN with none.
    var median: Double {
        let sorted = samples.sorted()
        guard !sorted.isEmpty else { return .nan }
        let middle = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
    }

    /// The smallest and largest samples; NaN with none.
    var min: Double { samples.min() ?? .nan }
    var max: Double { samples.max() ?? .nan }
    /// Whether the median meets the goal; nil without a goal.
    var met: Bool? { goal.map { !samples.isEmpty && $0.isMet(by: median) } }

    private enum Key: String, CodingKey { case scenario, name, unit, target, met, median, min, max, samples }

    /// Encodes the samples with their median, min, max, target and verdict.
    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        try container.encode(scenario, forKey: .scenario)
        try container.encode(name, forKey: .name)
        try container.encode(unit, forKey: .unit)
        try container.encodeIfPresent(goal, forKey: .target)
        try container.encodeIfPresent(met, forKey: .met)
        try container.encode(median, forKey: .median)
        try container.encode(min, forKey: .min)
        try container.encode(max, forKey: .max)
        try container.encode(samples, forKey: .samples)
    }
}

/// A number with as many digits as its size warrants.
func formatted(_ value: Double) -> String {
    if value.isNaN { return "n/a" }
    if value == value.rounded() && abs(value) < 1e15 { return String(Int(value)) }
    let magnitude = abs(value)
    return String(format: magnitude >= 100 ? "%.0f" : magnitude >= 10 ? "%.1f" : magnitude >= 1 ? "%.2f" : "%.3f", value)
}

/// The machine the figures were taken on.
struct Machine: Encodable {
    var cpus: Int
    var cpuModel: String
    var kernel: String
    var date: String

    /// Reads this machine's: online CPUs, CPU model (/proc/cpuinfo), kernel release, and now.
    static func current() -> Machine {
        let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let model = cpuinfo.split(separator: "\n").first { $0.hasPrefix("model name") }?
            .split(separator: ":", maxSplits: 1).last?.trimmingCharacters(in: .whitespaces) ?? "unknown"
        var names = utsname()
        uname(&names)
        let kernel = withUnsafeBytes(of: names.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        return Machine(cpus: sysconf(Int32(_SC_NPROCESSORS_ONLN)), cpuModel: model, kernel: kernel,
                       date: ISO8601DateFormatter().string(from: Date()))
    }
}

/// Everything one harness run found: written as a table and as JSON.
struct Report: Encodable {
    var machine = Machine.current()
    var mode: String
    var runs: Int
    var durationSeconds: Int
    var mallocInterposerHit: Bool
    var metrics: [Metric] = []
    var notes: [String] = []

    /// The results as a text table, one row per metric.
    var table: String {
        let header = ["scenario", "metric", "median", "min–max", "unit", "target", ""]
        let rows = metrics.map { m in
            [m.scenario, m.name, formatted(m.median),
             m.samples.count > 1 ? "\(formatted(m.min))–\(formatted(m.max))" : "",
             m.unit, m.goal?.text ?? "", m.met.map { $0 ? "met" : "MISSED" } ?? ""]
        }
        let widths = header.indices.map { column in ([header] + rows).map { $0[column].count }.max()! }
        func line(_ cells: [String]) -> String {
            zip(cells, widths).map { $0 + String(repeating: " ", count: $1 - $0.count) }.joined(separator: " | ")
        }
        var text = "| " + line(header) + " |\n|" + widths.map { String(repeating: "-", count: $0 + 2) }.joined(separator: "|") + "|\n"
        for row in rows { text += "| " + line(row) + " |\n" }
        return text
    }

    /// Writes the report as pretty-printed JSON.
    func write(to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        try encoder.encode(self).write(to: URL(fileURLWithPath: path))
    }
}
