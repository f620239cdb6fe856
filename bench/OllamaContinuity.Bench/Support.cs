using System.Net;
using System.Net.Http.Headers;
using OllamaContinuity.Failover;
using OllamaContinuity.Failover.Protocols;

namespace OllamaContinuity.Bench;

/// <summary>Latency samples in microseconds, and their summary.</summary>
internal sealed class Samples
{
    private readonly List<double> _us = new(8192);

    public int Count => _us.Count;

    public void Add(long startTimestamp, long endTimestamp) => _us.Add((endTimestamp - startTimestamp) * 1_000_000.0 / System.Diagnostics.Stopwatch.Frequency);

    public double P50 => Percentile(0.50);
    public double P95 => Percentile(0.95);
    public double Mean => _us.Count == 0 ? double.NaN : _us.Average();

    /// <summary>Nearest-rank percentile.</summary>
    public double Percentile(double p)
    {
        if (_us.Count == 0)
        {
            return double.NaN;
        }

        var sorted = _us.ToArray();
        Array.Sort(sorted);
        var rank = (int)Math.Ceiling(p * sorted.Length) - 1;
        return sorted[Math.Clamp(rank, 0, sorted.Length - 1)];
    }
}

/// <summary>A Markdown table printer (the output is pasted into bench/README.md as it is).</summary>
internal sealed class Table(params string[] headers)
{
    private readonly List<string[]> _rows = [];

    public void Row(params string[] cells) => _rows.Add(cells);

    public void Print()
    {
        var widths = headers.Select((h, i) => Math.Max(h.Length, _rows.Select(r => r[i].Length).DefaultIfEmpty(0).Max())).ToArray();
        Console.WriteLine("| " + string.Join(" | ", headers.Select((h, i) => h.PadRight(widths[i]))) + " |");
        Console.WriteLine("|" + string.Join("|", widths.Select((w, i) => new string('-', w + 1) + (i == 0 ? "-" : ":"))) + "|");
        foreach (var r in _rows)
        {
            Console.WriteLine("| " + string.Join(" | ", r.Select((c, i) => i == 0 ? c.PadRight(widths[i]) : c.PadLeft(widths[i]))) + " |");
        }
    }
}

/// <summary>The raw side: a plain HttpClient POST of the bytes the engine would send, over a pooled handler configured like the engine's.</summary>
internal sealed class RawPost
{
    private readonly HttpClient _client;
    private readonly Uri _uri;
    private readonly byte[] _body;
    private readonly (string Name, string[] Values)[] _headers;

    private RawPost(HttpClient client, Uri uri, byte[] body, (string, string[])[] headers)
    {
        _client = client;
        _uri = uri;
        _body = body;
        _headers = headers;
    }

    /// <summary>Same keep-alive pooling as the engine's handler (HttpClientPool): one long-lived SocketsHttpHandler.</summary>
    public static HttpClient CreateClient(TimeSpan? connectTimeout = null) => new(new SocketsHttpHandler
    {
        PooledConnectionLifetime = TimeSpan.FromMinutes(5),
        PooledConnectionIdleTimeout = TimeSpan.FromMinutes(1),
        // As the engine's: it decompresses answers itself (Failover/Streaming/BoundedBody), so its handler does not.
        AutomaticDecompression = DecompressionMethods.None,
        MaxConnectionsPerServer = 256,
        AllowAutoRedirect = false,
        ConnectTimeout = connectTimeout ?? Timeout.InfiniteTimeSpan,
    })
    {
        Timeout = Timeout.InfiniteTimeSpan,
    };

    /// <summary>The exact body and headers the engine's protocol builds for this endpoint and request.</summary>
    public static async Task<RawPost> ForAsync(HttpClient client, BackendEndpoint endpoint, AiRequest request)
    {
        using var message = ChatProtocol.For(endpoint.Kind).BuildRequest(endpoint, request);
        var body = await message.Content!.ReadAsByteArrayAsync();
        var headers = message.Headers.Select(h => (h.Key, h.Value.ToArray())).ToArray();
        return new RawPost(client, endpoint.Uri, body, headers);
    }

    /// <summary>POST, read the whole body, check the status. No JSON parsing: that is part of what the core adds.</summary>
    public async Task<int> SendAsync(CancellationToken cancellationToken = default)
    {
        using var message = new HttpRequestMessage(HttpMethod.Post, _uri) { Content = new ByteArrayContent(_body) };
        message.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json") { CharSet = "utf-8" };
        foreach (var (name, values) in _headers)
        {
            message.Headers.TryAddWithoutValidation(name, values);
        }

        using var response = await _client.SendAsync(message, HttpCompletionOption.ResponseContentRead, cancellationToken).ConfigureAwait(false);
        var bytes = await response.Content.ReadAsByteArrayAsync(cancellationToken).ConfigureAwait(false);
        if (response.StatusCode != HttpStatusCode.OK || bytes.Length == 0)
        {
            throw new InvalidOperationException($"raw POST to {_uri} answered {(int)response.StatusCode}");
        }

        return bytes.Length;
    }
}

internal static class Requests
{
    public static readonly ChatMessage[] Prompt = [new("user", "Summarize the benefits of local AI in 50 words.")];

    /// <summary>A new request each time, as each Invoke-AiRequest call makes one (its id is part of the cost).</summary>
    public static AiRequest New() => new() { Messages = Prompt, Stream = false };

    public static void Expect(AiResponse response, BackendRole role)
    {
        if (response.Backend != role.ToString() || response.Text.Length == 0)
        {
            throw new InvalidOperationException($"expected an answer from {role}, got {response.Backend} ({response.Route})");
        }
    }
}

internal static class Fmt
{
    /// <summary>Set by --quick: a smoke run's small counts and short timeouts say nothing about the targets.</summary>
    public static bool Quick { get; set; }

    public static string Verdict(bool met) => Quick ? "n/a (--quick)" : met ? "met" : "MISSED";

    public static string Us(double v) => v.ToString("0.0", System.Globalization.CultureInfo.InvariantCulture);
    public static string N(double v, string format = "0.00") => v.ToString(format, System.Globalization.CultureInfo.InvariantCulture);
}
