using System.Buffers;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using OllamaContinuity.Failover;
using OllamaContinuity.Gateway.Formats;
using OllamaContinuity.TestSupport;
using Xunit;

namespace OllamaContinuity.Gateway.Tests;

/// <summary>
/// The parts of the gateway's hot path that were made cheaper (bench/README.md, scenario 5): they must give the same
/// bytes and counts as before.
/// </summary>
public sealed class GatewayHotPathTests
{
    [Fact]
    public void Latency_histogram_renders_cumulative_bucket_counts_count_and_sum()
    {
        var metrics = new GatewayMetrics();
        foreach (var seconds in new[] { 0.00390625, 0.015625, 0.75, 200.0, 0.005 })
        {
            metrics.Started();
            metrics.Finished("openai", "Cloud", 200, null, seconds);
        }

        var text = metrics.Render([]);
        string Bucket(string le) => $"ollamacontinuity_gateway_request_duration_seconds_bucket{{api=\"openai\",le=\"{le}\"}} ";
        // 0.005 is inside the le="0.005" bucket (Prometheus buckets are upper-inclusive).
        Assert.Contains(Bucket("0.005") + "2\n", text);
        Assert.Contains(Bucket("0.01") + "2\n", text);
        Assert.Contains(Bucket("0.025") + "3\n", text);
        Assert.Contains(Bucket("0.5") + "3\n", text);
        Assert.Contains(Bucket("1") + "4\n", text);
        Assert.Contains(Bucket("120") + "4\n", text);
        Assert.Contains(Bucket("+Inf") + "5\n", text);
        Assert.Contains("ollamacontinuity_gateway_request_duration_seconds_count{api=\"openai\"} 5\n", text);
        Assert.Contains("ollamacontinuity_gateway_request_duration_seconds_sum{api=\"openai\"} 200.774531\n", text);
        Assert.Contains("ollamacontinuity_gateway_in_flight 0\n", text);
    }

    [Fact]
    public void Stream_chunks_written_with_the_cached_writer_are_whole_escaped_events_each_time()
    {
        var state = new StreamState("abc123", "gpt-4o", DateTimeOffset.FromUnixTimeSeconds(1_700_000_000));
        var texts = new[] { "plain", "quote \" and \\ backslash", "line\nbreak\ttab", "é ü 中文 😀", "</script>" };
        foreach (var text in texts)
        {
            var output = new ArrayBufferWriter<byte>();
            OpenAIFormat.Instance.StreamDelta(output, state, text);
            var s = Encoding.UTF8.GetString(output.WrittenSpan);
            Assert.StartsWith("data: {\"id\":\"chatcmpl-abc123\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"gpt-4o\",", s);
            Assert.EndsWith("}\n\n", s);
            var chunk = JsonNode.Parse(s[6..])!;
            Assert.Equal(text, (string?)chunk["choices"]![0]!["delta"]!["content"]);
        }
    }

    [Fact]
    public void A_json_write_inside_another_gets_its_own_writer()
    {
        var outer = new ArrayBufferWriter<byte>();
        var inner = new ArrayBufferWriter<byte>();
        ApiFormat.WriteJson(outer, w =>
        {
            w.WriteStartObject();
            w.WriteString("a", "1");
            ApiFormat.WriteJson(inner, w2 =>
            {
                w2.WriteStartObject();
                w2.WriteString("b", "2");
                w2.WriteEndObject();
            });
            w.WriteString("c", "3");
            w.WriteEndObject();
        });
        Assert.Equal("""{"a":"1","c":"3"}""", Encoding.UTF8.GetString(outer.WrittenSpan));
        Assert.Equal("""{"b":"2"}""", Encoding.UTF8.GetString(inner.WrittenSpan));

        // A body that throws half-way leaves nothing behind for the next write on this thread.
        Assert.Throws<InvalidOperationException>(() => ApiFormat.WriteJson(new ArrayBufferWriter<byte>(), w =>
        {
            w.WriteStartObject();
            throw new InvalidOperationException("half-way");
        }));
        var next = new ArrayBufferWriter<byte>();
        ApiFormat.WriteJson(next, w => w.WriteStringValue("ok"));
        Assert.Equal("\"ok\"", Encoding.UTF8.GetString(next.WrittenSpan));
    }

    [Fact]
    public async Task Long_streams_relayed_on_the_engines_thread_arrive_whole_and_in_order_in_every_format_at_once()
    {
        await using var g = await GatewayHarness.StartAsync();
        var answer = string.Join(" ", Enumerable.Range(1, 600).Select(i => "w" + i));
        g.Cloud.Answer = _ => answer;
        var requests = new (string Path, string Body, Func<string, string> Text)[]
        {
            ("/v1/chat/completions", """{"model":"ollamacontinuity","stream":true,"messages":[{"role":"user","content":"long"}]}""", OpenAIText),
            ("/v1/messages", """{"model":"ollamacontinuity","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"long"}]}""", AnthropicText),
            ("/api/chat", """{"model":"ollamacontinuity","messages":[{"role":"user","content":"long"}]}""", OllamaText),
        };
        var results = await Task.WhenAll(Enumerable.Range(0, 12).Select(async i =>
        {
            var (path, body, text) = requests[i % requests.Length];
            var (r, s) = await g.SendAsync(g.Post(path, body));
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
            return text(s);
        }));
        Assert.All(results, t => Assert.Equal(answer, t));
    }

    private static string OpenAIText(string body) => string.Concat(GatewayHarness.OpenAIDeltas(body));

    private static string AnthropicText(string body) => string.Concat(body.Split("\n\n", StringSplitOptions.RemoveEmptyEntries)
        .Select(e => e.Split('\n').FirstOrDefault(l => l.StartsWith("data: ", StringComparison.Ordinal)))
        .Where(d => d is not null)
        .Select(d => JsonNode.Parse(d![6..])!)
        .Where(n => (string?)n["type"] == "content_block_delta")
        .Select(n => (string?)n["delta"]!["text"] ?? ""));

    private static string OllamaText(string body) => string.Concat(body.Split('\n', StringSplitOptions.RemoveEmptyEntries)
        .Select(l => (string?)JsonNode.Parse(l)!["message"]?["content"] ?? ""));

    [Fact]
    public void Timings_write_a_row_per_section_with_counts()
    {
        var path = TestPaths.New("timings");
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var t = GatewayTimings.ForTest(path);
        var f = System.Diagnostics.Stopwatch.Frequency;
        t.Add(GatewayTimings.Section.Parse, 0, f / 1000);      // 1 ms
        t.Add(GatewayTimings.Section.Parse, 0, 3 * f / 1000);  // 3 ms
        t.AddEngine(0, f / 10_000, [2 * f / 10_000, 5 * f / 10_000], f / 1000);
        t.Write();
        var lines = File.ReadAllLines(path);
        Assert.Contains("| Parse | 2 | 1000.0 | 3000.0 | 2000.0 |", lines);
        Assert.Contains("| EngineBeforeAttempt | 1 | 100.0 | 100.0 | 100.0 |", lines);
        Assert.Contains("| AttemptToHttp | 1 | 100.0 | 100.0 | 100.0 |", lines);
        Assert.Contains("| Http | 1 | 300.0 | 300.0 | 300.0 |", lines);
        Assert.Contains("| AfterHttp | 1 | 500.0 | 500.0 | 500.0 |", lines);
        Assert.Contains("| Total | 0 | - | - | - |", lines);
        Assert.Null(GatewayTimings.Current); // off unless OLLAMACONTINUITY_GATEWAY_TIMINGS is set
    }
}
