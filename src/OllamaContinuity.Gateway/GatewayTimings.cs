using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace OllamaContinuity.Gateway;

/// <summary>
/// Where a chat request's time goes inside the gateway, for the benchmark (bench/, scenario 5) only: off unless the
/// environment variable <see cref="Variable"/> names a file, into which a summary (per section: count, p50, p99,
/// mean in µs) is written when the gateway stops. When off, <see cref="Current"/> is null and the hot path pays
/// one null check per section. The samples are kept in fixed arrays (the first <see cref="Capacity"/> per section).
/// </summary>
internal sealed class GatewayTimings
{
    public const string Variable = "OLLAMACONTINUITY_GATEWAY_TIMINGS";
    public const int Capacity = 1 << 18;

    /// <summary>The sections, in the order a request passes through them.</summary>
    public enum Section
    {
        /// <summary>From the gateway's first middleware to the chat handler (request id, client token, rate limiters, routing).</summary>
        Pipeline,
        /// <summary>Reading and translating the request body.</summary>
        Parse,
        /// <summary>From calling the engine to its first backend attempt (plan, contingency, circuit checks).</summary>
        EngineBeforeAttempt,
        /// <summary>The whole engine call (whole answers) or until the first token reached the handler (streams).</summary>
        Engine,
        /// <summary>Writing the answer: the whole JSON body, or the stream from its first token to its end.</summary>
        Write,
        /// <summary>From the first middleware to the end of the chat handler.</summary>
        Total,
    }

    private readonly long[][] _samples;
    private readonly int[] _counts;
    private readonly string _path;

    private GatewayTimings(string path)
    {
        _path = path;
        var n = Enum.GetValues<Section>().Length;
        _samples = new long[n][];
        for (var i = 0; i < n; i++)
        {
            _samples[i] = new long[Capacity];
        }

        _counts = new int[n];
    }

    /// <summary>The process's timings, or null (the normal case) when <see cref="Variable"/> is not set.</summary>
    public static GatewayTimings? Current { get; } = Environment.GetEnvironmentVariable(Variable) is { Length: > 0 } p ? new GatewayTimings(p) : null;

    internal static GatewayTimings ForTest(string path) => new(path);

    public void Add(Section section, long startTimestamp, long endTimestamp)
    {
        var i = Interlocked.Increment(ref _counts[(int)section]) - 1;
        if (i < Capacity)
        {
            _samples[(int)section][i] = endTimestamp - startTimestamp;
        }
    }

    /// <summary>Writes the summary (a Markdown table) to the file named at start.</summary>
    public void Write()
    {
        var sb = new StringBuilder();
        sb.Append("| gateway section | n | p50 µs | p99 µs | mean µs |\n|---|--:|--:|--:|--:|\n");
        foreach (var s in Enum.GetValues<Section>())
        {
            var n = Math.Min(Volatile.Read(ref _counts[(int)s]), Capacity);
            var us = _samples[(int)s].AsSpan(0, n).ToArray().Select(t => t * 1_000_000.0 / Stopwatch.Frequency).ToArray();
            Array.Sort(us);
            string P(double p) => us.Length == 0 ? "-" : us[Math.Clamp((int)Math.Ceiling(p * us.Length) - 1, 0, us.Length - 1)].ToString("0.0", CultureInfo.InvariantCulture);
            sb.Append(CultureInfo.InvariantCulture, $"| {s} | {n} | {P(0.5)} | {P(0.99)} | {(us.Length == 0 ? "-" : us.Average().ToString("0.0", CultureInfo.InvariantCulture))} |\n");
        }

        File.WriteAllText(_path, sb.ToString());
    }
}
