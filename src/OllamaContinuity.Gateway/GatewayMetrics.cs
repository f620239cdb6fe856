using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using OllamaContinuity.Failover;

namespace OllamaContinuity.Gateway;

/// <summary>The gateway's counters, written in the Prometheus text exposition format (version 0.0.4) by <c>GET /metrics</c>.</summary>
internal sealed class GatewayMetrics
{
    private static readonly double[] Buckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];
    private readonly ConcurrentDictionary<(string Api, string Backend, int Status), long> _requests = new();
    private readonly ConcurrentDictionary<string, long> _failovers = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, long> _rejected = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, Histogram> _latency = new(StringComparer.Ordinal);
    private long _inFlight;

    public long InFlight => Interlocked.Read(ref _inFlight);

    public long TotalRequests => _requests.Values.Sum();

    public long TotalFailovers => _failovers.Values.Sum();

    public void Started() => Interlocked.Increment(ref _inFlight);

    /// <summary>One chat request finished: its API, who served it ('none' when nobody did), the status sent, the failover reason, the seconds it took.</summary>
    public void Finished(string api, string backend, int status, string? failoverReason, double seconds)
    {
        Interlocked.Decrement(ref _inFlight);
        _requests.AddOrUpdate((api, backend, status), 1, (_, v) => v + 1);
        if (!string.IsNullOrEmpty(failoverReason))
        {
            _failovers.AddOrUpdate(failoverReason, 1, (_, v) => v + 1);
        }

        _latency.GetOrAdd(api, _ => new Histogram()).Observe(seconds);
    }

    /// <summary>A request turned away before the engine: unauthorized, rate_limited, too_large, bad_request.</summary>
    public void Rejected(string reason) => _rejected.AddOrUpdate(reason, 1, (_, v) => v + 1);

    public string Render(IReadOnlyList<CircuitSnapshot> circuits)
    {
        var sb = new StringBuilder(2048);
        sb.Append("# HELP ollamacontinuity_gateway_requests_total Chat requests answered by the gateway.\n# TYPE ollamacontinuity_gateway_requests_total counter\n");
        foreach (var ((api, backend, status), v) in _requests.OrderBy(k => k.Key.Api).ThenBy(k => k.Key.Backend).ThenBy(k => k.Key.Status))
        {
            sb.Append(CultureInfo.InvariantCulture, $"ollamacontinuity_gateway_requests_total{{api=\"{api}\",backend=\"{backend}\",code=\"{status}\"}} {v}\n");
        }

        sb.Append("# HELP ollamacontinuity_gateway_failovers_total Requests the cloud did not serve, by reason (a failure class or Contingency).\n# TYPE ollamacontinuity_gateway_failovers_total counter\n");
        foreach (var (reason, v) in _failovers.OrderBy(k => k.Key, StringComparer.Ordinal))
        {
            sb.Append(CultureInfo.InvariantCulture, $"ollamacontinuity_gateway_failovers_total{{reason=\"{Escape(reason)}\"}} {v}\n");
        }

        sb.Append("# HELP ollamacontinuity_gateway_rejected_total Requests refused before reaching a backend, by reason.\n# TYPE ollamacontinuity_gateway_rejected_total counter\n");
        foreach (var (reason, v) in _rejected.OrderBy(k => k.Key, StringComparer.Ordinal))
        {
            sb.Append(CultureInfo.InvariantCulture, $"ollamacontinuity_gateway_rejected_total{{reason=\"{reason}\"}} {v}\n");
        }

        sb.Append("# HELP ollamacontinuity_gateway_in_flight Chat requests being served now.\n# TYPE ollamacontinuity_gateway_in_flight gauge\n");
        sb.Append(CultureInfo.InvariantCulture, $"ollamacontinuity_gateway_in_flight {InFlight}\n");

        sb.Append("# HELP ollamacontinuity_circuit_state State of each cloud circuit: 0 closed, 1 cooling down (a Retry-After), 2 open (probed in the background).\n# TYPE ollamacontinuity_circuit_state gauge\n");
        foreach (var c in circuits.OrderBy(c => c.Endpoint, StringComparer.Ordinal))
        {
            var state = c.State switch { "Closed" => 0, "CoolingDown" => 1, _ => 2 };
            sb.Append(CultureInfo.InvariantCulture, $"ollamacontinuity_circuit_state{{endpoint=\"{Escape(c.Endpoint)}\"}} {state}\n");
        }

        sb.Append("# HELP ollamacontinuity_gateway_request_duration_seconds Time from the request to the end of the answer.\n# TYPE ollamacontinuity_gateway_request_duration_seconds histogram\n");
        foreach (var (api, h) in _latency.OrderBy(k => k.Key, StringComparer.Ordinal))
        {
            h.Render(sb, "ollamacontinuity_gateway_request_duration_seconds", $"api=\"{api}\"");
        }

        return sb.ToString();
    }

    private static string Escape(string s) => s.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal);

    private sealed class Histogram
    {
        // Per bucket, the observations that fell in it and in no lower bucket (the last slot: above every bound), so that
        // an observation costs two interlocked adds instead of one per bucket; Render adds them up into Prometheus's
        // cumulative counts.
        private readonly long[] _counts = new long[Buckets.Length + 1];
        private long _sumMicros;

        public void Observe(double seconds)
        {
            var i = 0;
            while (i < Buckets.Length && seconds > Buckets[i])
            {
                i++;
            }

            Interlocked.Increment(ref _counts[i]);
            Interlocked.Add(ref _sumMicros, (long)(seconds * 1_000_000));
        }

        public void Render(StringBuilder sb, string name, string labels)
        {
            long cumulative = 0;
            for (var i = 0; i < Buckets.Length; i++)
            {
                cumulative += Interlocked.Read(ref _counts[i]);
                sb.Append(CultureInfo.InvariantCulture, $"{name}_bucket{{{labels},le=\"{Buckets[i]}\"}} {cumulative}\n");
            }

            var count = cumulative + Interlocked.Read(ref _counts[Buckets.Length]);
            sb.Append(CultureInfo.InvariantCulture, $"{name}_bucket{{{labels},le=\"+Inf\"}} {count}\n");
            sb.Append(CultureInfo.InvariantCulture, $"{name}_sum{{{labels}}} {Interlocked.Read(ref _sumMicros) / 1_000_000.0}\n");
            sb.Append(CultureInfo.InvariantCulture, $"{name}_count{{{labels}}} {count}\n");
        }
    }
}
