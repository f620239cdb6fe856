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

    [Fact]
    public async Task A_log_moved_away_or_deleted_between_requests_gets_the_next_line_at_its_path()
    {
        // On Linux the log stays open between requests: rotation (a rename) or deletion must not send the next line
        // into the old file.
        await using var ollama = FakeAiServer.Start(FakeApi.Ollama);
        using var engine = new FailoverEngine();
        var log = Harness.TempLog();
        var plan = Harness.Plan(null, log, Harness.Ollama(ollama));
        await engine.SendAsync(Harness.Request("one"), plan);
        File.Move(log, log + ".1");
        await engine.SendAsync(Harness.Request("two"), plan);
        Assert.Single(File.ReadAllLines(log + ".1"));
        Assert.Single(File.ReadAllLines(log));

        File.Delete(log);
        await engine.SendAsync(Harness.Request("three"), plan);
        await engine.SendAsync(Harness.Request("four"), plan);
        Assert.Equal(2, File.ReadAllLines(log).Length);
        Assert.Single(File.ReadAllLines(log + ".1"));
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(log));
        }

        // Replaced by another file at the same path (an admin truncating it by hand with a new file).
        File.WriteAllText(log + ".new", "");
        File.Move(log + ".new", log, overwrite: true);
        await engine.SendAsync(Harness.Request("five"), plan);
        Assert.Single(File.ReadAllLines(log));
    }

    [Fact]
    public async Task Lines_to_many_log_paths_all_arrive_whole()
    {
        // More paths than the handles kept open: each line still lands, in its own file.
        var paths = Enumerable.Range(0, AppendHandles.MaxOpen * 3).Select(_ => Harness.TempLog()).ToArray();
        for (var round = 0; round < 2; round++)
        {
            await Task.WhenAll(paths.Select(p => RequestLog.AppendAsync(p, System.Text.Encoding.UTF8.GetBytes("{\"p\":\"" + Path.GetFileName(Path.GetDirectoryName(p)) + "\"}\n"))));
        }

        Assert.All(paths, p =>
        {
            var lines = File.ReadAllLines(p);
            Assert.Equal(2, lines.Length);
            Assert.All(lines, l => Assert.Contains(Path.GetFileName(Path.GetDirectoryName(p))!, l, StringComparison.Ordinal));
        });
    }
}
