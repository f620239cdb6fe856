using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using OllamaContinuity.Alerts;
using OllamaContinuity.Contingency;
using OllamaContinuity.Failover;
using OllamaContinuity.Internal;
using OllamaContinuity.Tests.Failover;
using OllamaContinuity.TestSupport;

namespace OllamaContinuity.Tests.Internal;

/// <summary>Issue 9, items 11 and 12: no piece of a key in any text, and no key that could break the request.</summary>
public sealed class SecretsAndKeysTests
{
    private const string Key = Harness.CanaryKey;

    private static IEnumerable<string> Fragments(string secret, int length = Redact.FragmentLength) =>
        Enumerable.Range(0, secret.Length - length + 1).Select(i => secret.Substring(i, length));

    private static void AssertNoFragment(string? text, string what)
    {
        Assert.NotNull(text);
        foreach (var f in Fragments(Key))
        {
            Assert.False(text!.Contains(f, StringComparison.Ordinal), $"{what} holds '{f}', a piece of the key: {text}");
        }
    }

    [Fact]
    public void Scrub_removes_the_key_and_every_piece_of_8_or_more_characters_of_it()
    {
        var text = $"a {Key} b {Key[..12]}| c {Key[^9..]} d {Key[5..13]} e {Key[..7]} f";

        var scrubbed = Redact.Scrub(text, Key)!;

        Assert.Equal($"a *** b ***| c *** d *** e {Key[..7]} f", scrubbed);
        Assert.Equal("hello", Redact.Scrub("hello", Key));
    }

    [Fact]
    public void ScrubAndCut_scrubs_before_it_cuts()
    {
        var text = new string('x', 295) + Key + " tail";

        var cut = Redact.ScrubAndCut(text, 300, Key)!;

        Assert.Equal(new string('x', 295) + "*** t...", cut);
    }

    [Fact]
    public async Task A_server_that_echoes_the_key_near_the_300th_character_leaks_no_piece_of_it_anywhere()
    {
        await using var cloud = FakeAiServer.Start(FakeApi.OpenAI, "cloud");
        var hook = WebhookListener.Start();
        await using var _ = hook;
        // The message is cut at 300 characters: the key starts at 290, so a cut before scrubbing leaves its first 10.
        var message = new string('m', 290) + Key + " was rejected";
        cloud.Fault = FaultSpec.Http(401, new JsonObject { ["error"] = new JsonObject { ["message"] = message, ["type"] = "invalid_request_error" } }.ToJsonString());
        using var engine = new FailoverEngine();
        using var pool = new OllamaContinuity.Http.HttpClientPool();
        var alerts = new AlertDispatcher(TimeProvider.System, () => new AlertSettings { WebhookUri = hook.Uri, SystemLog = false }, pool.CreateClient, null, () => null);
        ContinuityRuntime.Attach(engine, null, null, alerts);
        var log = Path.Combine(TestPaths.New("secrets"), "requests.jsonl");
        var plan = Harness.Plan(Harness.Cloud(cloud), log, BackendEndpoint.Ollama(FakeAiServer.RefusedUri("/").ToString(), "m", Harness.Fast));
        var observer = new RecordingObserver();

        var e = await Assert.ThrowsAsync<AiRequestException>(() => engine.SendAsync(Harness.Request("q"), plan, observer));
        await alerts.FlushAsync(TimeSpan.FromSeconds(5));

        Assert.Equal(AiRequestFailure.AllBackendsFailed, e.Failure);
        Assert.Contains("***", e.Attempts[0].Detail, StringComparison.Ordinal);
        AssertNoFragment(e.Message, "the exception");
        AssertNoFragment(e.Attempts[0].Detail, "Attempts.Detail");
        AssertNoFragment(string.Join("\n", observer.Warnings), "the warnings");
        Assert.NotEmpty(observer.Warnings);
        AssertNoFragment(File.ReadAllText(log), "the request log");
        Assert.True(await hook.WaitForAsync(1, TimeSpan.FromSeconds(5)));
        AssertNoFragment(string.Join("\n", hook.Calls.Select(c => c.Body)), "the webhook alert");
        AssertNoFragment(AlertPayload.Message(new ContinuityEvent(ContinuityEventKind.AllBackendsFailed, DateTimeOffset.UtcNow, null, e.Attempts[0].Detail)), "the syslog line");
    }

    [Theory]
    [InlineData("sk-test\r\nGET /smuggled HTTP/1.1\r\nHost: x", "control character")]
    [InlineData("sk-test\nX-Evil: 1", "control character")]
    [InlineData("sk-t\u00e9st", "non-ASCII")]
    [InlineData("sk-\u201ctest\u201d", "non-ASCII")]
    [InlineData("sk-\u0000test", "control character")]
    [InlineData("   ", "empty")]
    public void A_key_that_would_break_the_request_is_refused_with_a_clear_error_that_does_not_show_it(string key, string why)
    {
        var e = Assert.Throws<ArgumentException>(() => BackendEndpoint.Cloud(BackendKind.OpenAI, "https://api.example.com/v1/chat/completions", "m", key));

        Assert.Equal(ApiKeys.InvalidKeyId, e.ParamName);
        Assert.Contains(why, e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("test", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Surrounding_white_space_is_trimmed_from_a_key()
    {
        Assert.Equal("sk-abc", ApiKeys.Normalize("  sk-abc\r\n", "-CloudApiKey"));
        Assert.Equal("sk-abc", ApiKeys.Normalize("sk-abc\n", "CLOUD_API_KEY"));
    }

    [Fact]
    public async Task A_key_with_a_trailing_newline_reaches_the_socket_as_one_clean_header()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var uri = new Uri($"http://127.0.0.1:{((IPEndPoint)listener.LocalEndpoint).Port}/v1/chat/completions");
        var raw = Task.Run(async () =>
        {
            using var client = await listener.AcceptTcpClientAsync();
            var stream = client.GetStream();
            var buffer = new byte[64 * 1024];
            var all = new StringBuilder();
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            while (!all.ToString().Contains("\r\n\r\n", StringComparison.Ordinal))
            {
                var n = await stream.ReadAsync(buffer, cts.Token);
                if (n == 0)
                {
                    break;
                }

                all.Append(Encoding.Latin1.GetString(buffer, 0, n));
            }

            await stream.WriteAsync("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"u8.ToArray(), cts.Token);
            return all.ToString();
        });
        await using var ollama = FakeAiServer.Start(FakeApi.Ollama, "ollama");
        using var engine = new FailoverEngine();
        var cloudEp = BackendEndpoint.Cloud(BackendKind.OpenAI, uri.ToString(), "m", "sk-line-from-a-file\n", Harness.Fast);

        var r = await engine.SendAsync(Harness.Request("q"), Harness.Plan(cloudEp, Harness.TempLog(), Harness.Ollama(ollama)));
        var head = await raw;
        listener.Stop();

        Assert.Equal("Ollama", r.Backend);
        var lines = head.Split("\r\n");
        Assert.Contains("Authorization: Bearer sk-line-from-a-file", lines);
        Assert.DoesNotContain(lines, l => l.Length == 0 && Array.IndexOf(lines, l) < Array.IndexOf(lines, "Authorization: Bearer sk-line-from-a-file"));
        Assert.DoesNotContain('\n', head.Replace("\r\n", "", StringComparison.Ordinal));
    }
}
