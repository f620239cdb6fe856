using System.Text.Json.Nodes;
using OllamaContinuity.Failover;
using OllamaContinuity.TestSupport;

namespace OllamaContinuity.Tests.Failover;

public sealed class RequestLogTests
{
    [Fact]
    public async Task Each_request_is_one_line_with_every_attempt_and_no_content_unless_asked()
    {
        await using var cloud = FakeAiServer.Start(FakeApi.OpenAI);
        await using var ollama = FakeAiServer.Start(FakeApi.Ollama);
        cloud.Fault = FaultSpec.Http(500);
        using var engine = new FailoverEngine();
        var log = Harness.TempLog();
        var plan = Harness.Plan(Harness.Cloud(cloud), log, Harness.Ollama(ollama));
        var r1 = await engine.SendAsync(Harness.Request("confidential prompt", workflow: "hr"), plan);
        var r2 = await engine.SendAsync(Harness.Request("logged prompt", workflow: "hr", logContent: true), plan);

        var lines = File.ReadAllLines(log).Select(l => JsonNode.Parse(l)!).ToArray();
        Assert.Equal(2, lines.Length);
        Assert.Equal(r1.RequestId, lines[0]["requestId"]!.GetValue<string>());
        Assert.Equal("Ollama", lines[0]["backend"]!.GetValue<string>());
        Assert.Equal("hr", lines[0]["workflow"]!.GetValue<string>());
        Assert.Equal("ServerError", lines[0]["failoverReason"]!.GetValue<string>());
        Assert.False(lines[0]["contingency"]!.GetValue<bool>());
        var attempts = lines[0]["attempts"]!.AsArray();
        Assert.Equal(3, attempts.Count); // the cloud, its one retry, Ollama: every try is logged
        Assert.Equal(500, attempts[1]!["statusCode"]!.GetValue<int>());
        Assert.Equal("Cloud", attempts[0]!["backend"]!.GetValue<string>());
        Assert.Equal("Failed", attempts[0]!["outcome"]!.GetValue<string>());
        Assert.Equal(500, attempts[0]!["statusCode"]!.GetValue<int>());
        Assert.True(attempts[2]!["latencyMs"]!.GetValue<double>() >= 0);
        Assert.DoesNotContain("confidential prompt", File.ReadAllText(log));
        Assert.Null(lines[0]["output"]);

        Assert.Equal("logged prompt", lines[1]["messages"]![0]!["content"]!.GetValue<string>());
        Assert.Equal(r2.Text, lines[1]["output"]!.GetValue<string>());
        Assert.DoesNotContain(Harness.CanaryKey, File.ReadAllText(log));
    }

    [Fact]
    public async Task Failed_requests_are_logged_too()
    {
        using var engine = new FailoverEngine();
        var log = Harness.TempLog();
        var plan = Harness.Plan(Harness.Cloud(FakeAiServer.RefusedUri()), log, BackendEndpoint.Ollama(FakeAiServer.RefusedUri("/").ToString(), "m", Harness.Fast));
        await Assert.ThrowsAsync<AiRequestException>(() => engine.SendAsync(Harness.Request(), plan));
        var line = JsonNode.Parse(Assert.Single(File.ReadAllLines(log)))!;
        Assert.Equal("None", line["backend"]!.GetValue<string>());
        Assert.Equal("AllBackendsFailed", line["error"]!.GetValue<string>());
        Assert.Equal(2, line["attempts"]!.AsArray().Count);
    }

    [Fact]
    public async Task Concurrent_requests_write_whole_lines()
    {
        await using var ollama = FakeAiServer.Start(FakeApi.Ollama);
        using var engine = new FailoverEngine();
        var log = Harness.TempLog();
        var plan = Harness.Plan(null, log, Harness.Ollama(ollama));
        await Task.WhenAll(Enumerable.Range(0, 64).Select(i => engine.SendAsync(Harness.Request("p" + i, logContent: true), plan)));
        var lines = File.ReadAllLines(log);
        Assert.Equal(64, lines.Length);
        Assert.All(lines, l => Assert.NotNull(JsonNode.Parse(l)));
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(log));
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(Path.GetDirectoryName(log)!));
        }
    }

    [Fact]
    public async Task An_unwritable_log_never_fails_a_request()
    {
        await using var ollama = FakeAiServer.Start(FakeApi.Ollama);
        using var engine = new FailoverEngine();
        var blocker = TestPaths.New("blocker"); // a file where the log's folder should be
        Directory.CreateDirectory(Path.GetDirectoryName(blocker)!);
        File.WriteAllText(blocker, "");
        var plan = Harness.Plan(null, Path.Combine(blocker, "sub", "requests.jsonl"), Harness.Ollama(ollama));
        var r = await engine.SendAsync(Harness.Request(), plan);
        Assert.Equal("Ollama", r.Backend);
    }
}
