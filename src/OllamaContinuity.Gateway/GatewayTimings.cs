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
        /// <summary>Whole answers: from calling the engine to its first backend attempt (plan, contingency, circuit checks).</summary>
        EngineBeforeAttempt,
        /// <summary>Whole answers: from the first attempt's start to its HTTP request leaving (building the request).</summary>
        AttemptToHttp,
        /// <summary>Whole answers: the engine's HTTP exchange with the backend, until its response headers (System.Net.Http's activity).</summary>
        Http,
        /// <summary>Whole answers: from the backend's response headers to the engine's return (body, parse, request log, contingency log).</summary>
        AfterHttp,
        /// <summary>Whole answers: the whole engine call.</summary>
        Engine,
        /// <summary>Writing a whole answer's JSON body.</summary>
        Write,
        /// <summary>Streams: from calling the engine to the first token in the handler (headers and first chunk written).</summary>
        StreamFirstToken,
        /// <summary>Streams: from the first token to the end of the stream (every chunk relayed and flushed).</summary>
        StreamRest,
        /// <summary>From the first middleware to the end of the chat handler.</summary>
        Total,
    }

    private readonly long[][] _samples;
    private readonly int[] _counts;
    private readonly string _path;

    private static readonly AsyncLocal<long[]?> HttpMarks = new();

    private GatewayTimings(string path)
    {
        _path = path;
        // The engine's HTTP exchange, seen through System.Net.Http's activity (start: request sent; stop: headers in).
        ActivitySource.AddActivityListener(new ActivityListener
        {
            ShouldListenTo = source => source.Name == "System.Net.Http",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.PropagationData,
            ActivityStarted = _ =>
            {
                if (HttpMarks.Value is { } m && m[0] == 0)
                {
                    m[0] = Stopwatch.GetTimestamp();
                }
            },
            ActivityStopped = _ =>
            {
                if (HttpMarks.Value is { } m && m[1] == 0)
                {
                    m[1] = Stopwatch.GetTimestamp();
                }
            },
        });
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

    /// <summary>Starts watching the first HTTP exchange of the engine call about to be made on this async flow.</summary>
    public static long[] WatchHttp() => HttpMarks.Value = new long[2];

    /// <summary>Adds the sections of a whole answer's engine call.</summary>
    public void AddEngine(long sent, long attemptStarted, long[] http, long returned)
    {
        Add(Section.EngineBeforeAttempt, sent, attemptStarted);
        Add(Section.Engine, sent, returned);
        if (attemptStarted != 0 && http[0] != 0 && http[1] != 0)
        {
            Add(Section.AttemptToHttp, attemptStarted, http[0]);
            Add(Section.Http, http[0], http[1]);
            Add(Section.AfterHttp, http[1], returned);
        }
    }

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
