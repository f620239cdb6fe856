using System.Diagnostics;
using OllamaContinuity.Failover;
using OllamaContinuity.TestSupport;

namespace OllamaContinuity.Tests.Failover;

/// <summary>
/// Every read is bounded (longest line, whole answer, decompression ratio): crossing a bound fails that backend over,
/// with the bound named; a child process served a hostile stream stays under 200 MB peak RSS.
/// </summary>
public sealed class ResponseLimitsTests
{
    private static BackendTimeouts T => StreamRescueTests.T;

    [Theory]
    [InlineData(FakeApi.OpenAI, FaultKind.EndlessLine, "MaxLineBytes")]
    [InlineData(FakeApi.Ollama, FaultKind.EndlessLine, "MaxLineBytes")]
    [InlineData(FakeApi.OpenAI, FaultKind.GzipBomb, "MaxDecompressionRatio")]
    [InlineData(FakeApi.Ollama, FaultKind.GzipBomb, "MaxDecompressionRatio")]
    public async Task A_hostile_stream_fails_over_naming_the_bound(FakeApi api, FaultKind fault, string bound)
    {
        await using var hostile = FakeAiServer.Start(api, "hostile");
        await using var ollama = FakeAiServer.Start(FakeApi.Ollama, "ollama");
        hostile.Fault = new FaultSpec(fault);
        using var engine = new FailoverEngine();
        var first = api == FakeApi.Ollama ? Harness.Ollama(hostile, T) : Harness.Cloud(hostile, T);
        var plan = api == FakeApi.Ollama ? Harness.Plan(null, Harness.TempLog(), first, Harness.Ollama(ollama, T)) : Harness.Plan(first, Harness.TempLog(), Harness.Ollama(ollama, T));

        var r = await engine.SendAsync(Harness.Request(stream: true), plan);

        Assert.Equal("ollama: reply to hello", r.Text);
        Assert.Equal("ResponseTooLarge", r.Attempts[0].FailureClass);
        Assert.Contains(bound, r.Attempts[0].Detail);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task An_answer_over_MaxResponseBytes_fails_over_naming_the_bound(bool stream)
    {
        await using var cloud = FakeAiServer.Start(FakeApi.OpenAI, "cloud");
        await using var ollama = FakeAiServer.Start(FakeApi.Ollama, "ollama");
        cloud.Answer = _ => new string('x', 64 * 1024);
        using var engine = new FailoverEngine();
        var request = new AiRequest { Messages = [new ChatMessage("user", "hello")], Stream = stream, MaxResponseBytes = 16 * 1024 };

        var r = await engine.SendAsync(request, Harness.Plan(Harness.Cloud(cloud, T), Harness.TempLog(), Harness.Ollama(ollama, T)));

        Assert.Equal("Ollama", r.Backend);
        Assert.Equal("ResponseTooLarge", r.FailoverReason);
        Assert.Contains("16384-byte bound (MaxResponseBytes", r.Attempts[0].Detail);
    }

    [SkippableTheory]
    [InlineData("endless")]
    [InlineData("gzip")]
    public async Task Peak_memory_under_a_hostile_stream_stays_under_200_MB(string kind)
    {
        Skip.IfNot(OperatingSystem.IsLinux(), "reads VmHWM from /proc/self/status");
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { typeof(Program).Assembly.Location, "hostile-stream", kind })
        {
            psi.ArgumentList.Add(a);
        }

        using var child = Process.Start(psi)!;
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        var output = child.StandardOutput.ReadToEndAsync(cts.Token);
        var error = child.StandardError.ReadToEndAsync(cts.Token);
        await child.WaitForExitAsync(cts.Token);
        Assert.True(child.ExitCode == 0, await output + await error);

        // "VmHWM=<kB> reason=<class> detail=<detail>"
        var line = (await output).Trim().Split('\n')[^1];
        var peakKb = long.Parse(line.Split(' ')[0]["VmHWM=".Length..], System.Globalization.CultureInfo.InvariantCulture);
        Assert.Contains("reason=ResponseTooLarge", line);
        Assert.True(peakKb < 200 * 1024, $"peak RSS {peakKb / 1024} MB: {line}");
    }

    /// <summary>The child side: a hostile cloud stream, a healthy Ollama, one streamed request; prints the peak RSS.</summary>
    internal static async Task<int> HostileChildAsync(string kind)
    {
        await using var hostile = FakeAiServer.Start(FakeApi.OpenAI, "hostile");
        await using var ollama = FakeAiServer.Start(FakeApi.Ollama, "ollama");
        hostile.Fault = new FaultSpec(kind == "gzip" ? FaultKind.GzipBomb : FaultKind.EndlessLine);
        using var engine = new FailoverEngine();
        var timeouts = new BackendTimeouts { Total = TimeSpan.FromSeconds(30), FirstToken = TimeSpan.FromSeconds(30) };
        var plan = new BackendPlan(Harness.Cloud(hostile, timeouts), [Harness.Ollama(ollama, T)]) { DisableLog = true };
        var r = await engine.SendAsync(Harness.Request(stream: true), plan);
        var hwm = File.ReadLines("/proc/self/status").First(l => l.StartsWith("VmHWM:", StringComparison.Ordinal)).Split(' ', StringSplitOptions.RemoveEmptyEntries)[1];
        Console.WriteLine($"VmHWM={hwm} reason={r.FailoverReason} detail={r.Attempts[0].Detail}");
        return 0;
    }
}
