using System.Net;
using System.Net.Sockets;
using System.Text;
using OllamaContinuity.Drill;
using OllamaContinuity.Exposure;
using OllamaContinuity.Hardening;
using OllamaContinuity.Internal;

namespace OllamaContinuity.Tests.Internal;

/// <summary>Issue 9, items 7 and 14: one strict IP parser, one sanitizer for network text.</summary>
public sealed class HostileTextTests
{
    [Theory]
    [InlineData("10.0.0.1", "10.0.0.1")]
    [InlineData("0.0.0.0", "0.0.0.0")]
    [InlineData("255.255.255.255", "255.255.255.255")]
    [InlineData("fd00::1", "fd00::1")]
    [InlineData("::ffff:10.0.0.1", "::ffff:10.0.0.1")]
    public void Strict_addresses_parse(string text, string expected)
    {
        Assert.True(IpText.TryParseAddress(text, out var a, out var problem), problem);
        Assert.Equal(IPAddress.Parse(expected), a);
    }

    [Theory]
    [InlineData("010.010.010.010", "leading zero")]
    [InlineData("012.0143.0.01", "leading zero")]
    [InlineData("10.1", "four decimal numbers")]
    [InlineData("167772161", "four decimal numbers")]
    [InlineData("0x0a.0.0.1", "four decimal numbers")]
    [InlineData("10.0.0.256", "larger than 255")]
    [InlineData("::ffff:010.0.0.1", "leading zero")]
    [InlineData("fe80::1%eth0", "zone id")]
    public void Ambiguous_addresses_are_refused_with_the_reason(string text, string reason)
    {
        Assert.False(IpText.TryParseAddress(text, out _, out var problem));
        Assert.Contains(reason, problem, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("012.0143.0.01")]
    [InlineData("10.99.0.01")]
    [InlineData("192.168.010.0/24")]
    [InlineData("167772161")]
    [InlineData("10.1")]
    public void Scan_targets_with_ambiguous_IPv4_are_refused_not_scanned_elsewhere(string target)
    {
        var e = Assert.Throws<ScanTargetException>(() => ScanTargets.Validate([target], force: false));
        Assert.Equal("InvalidTarget", e.ErrorId);
    }

    [Fact]
    public async Task Scan_target_expansion_never_resolves_a_numeric_target_as_a_name()
    {
        var asked = new List<string>();
        await Assert.ThrowsAsync<ScanTargetException>(() => ScanTargets.ExpandAsync(["012.0143.0.01"], false, TimeSpan.FromSeconds(1), (n, _) => { asked.Add(n); return Task.FromResult(Array.Empty<IPAddress>()); }));
        Assert.Empty(asked);
        var ok = await ScanTargets.ExpandAsync(["10.99.0.1", "192.168.10.0/30"], false, TimeSpan.FromSeconds(1));
        Assert.Equal(["10.99.0.1", "192.168.10.1", "192.168.10.2"], ok.Targets.Select(t => t.ToString()));
    }

    [Theory]
    [InlineData("010.0.0.1:11434", "InvalidBindAddress")]
    [InlineData("010.0.0.1", "InvalidBindAddress")]
    [InlineData("not:a:port:x", "InvalidBindAddress")]
    [InlineData("127.0.0.1:99999", "InvalidBindAddress")]
    [InlineData("127.0.0.1:abc", "InvalidBindAddress")]
    [InlineData("ftp://127.0.0.1:11434", "InvalidBindAddress")]
    [InlineData("127.0.0.1:11434/api", "InvalidBindAddress")]
    [InlineData("my_host:11434", "InvalidBindAddress")]
    [InlineData("http://0.0.0.0", "BindAllInterfaces")]
    [InlineData("0.0.0.0:11434", "BindAllInterfaces")]
    [InlineData(":11434", "BindAllInterfaces")]
    [InlineData("[::]:11434", "BindAllInterfaces")]
    [InlineData("::", "BindAllInterfaces")]
    public void Bind_addresses_Ollama_cannot_listen_on_or_that_expose_every_interface_are_refused(string bind, string id)
    {
        var e = Assert.Throws<HardeningValidationException>(() => HardeningPlanner.Validate(new HardeningRequest { BindAddress = bind }));
        Assert.Equal(id, e.ErrorId);
        if (id == "BindAllInterfaces")
        {
            Assert.Contains(HardeningPlanner.Validate(new HardeningRequest { BindAddress = bind, Force = true }), w => w.Contains("every interface", StringComparison.Ordinal));
        }
        else
        {
            Assert.Throws<HardeningValidationException>(() => HardeningPlanner.Validate(new HardeningRequest { BindAddress = bind, Force = true }));
        }
    }

    [Theory]
    [InlineData("127.0.0.1:11434")]
    [InlineData("192.168.1.10:11434")]
    [InlineData("[::1]:11434")]
    [InlineData("localhost:11434")]
    [InlineData("ollama.lan")]
    [InlineData("https://10.0.0.5:443")]
    public void Valid_bind_addresses_pass(string bind) => HardeningPlanner.Validate(new HardeningRequest { BindAddress = bind });

    [Fact]
    public void OLLAMA_HOST_with_a_leading_zero_is_not_read_as_octal() =>
        Assert.Equal("010.0.0.1", OllamaHost.Parse("010.0.0.1").Host);

    [Fact]
    public void A_drill_cloud_endpoint_whose_IPv4_host_System_Uri_reads_as_octal_is_refused()
    {
        Assert.Contains("8.0.0.1", IpText.UriHostProblem(new Uri("http://010.0.0.1:8080/v1")));
        Assert.Contains("10.0.0.1", IpText.UriHostProblem(new Uri("http://10.1/v1")));
        Assert.Null(IpText.UriHostProblem(new Uri("http://10.0.0.1:8080/v1")));
        Assert.Null(IpText.UriHostProblem(new Uri("https://api.openai.com/v1")));
        Assert.Null(IpText.UriHostProblem(new Uri("http://[::1]:8080/")));
    }

    [Theory]
    [InlineData("llama3\u001b]0;pwned\u0007", "llama3")]
    [InlineData("a\u001b]52;c;ZXZpbA==\u001b\\b", "ab")]
    [InlineData("\u001b[2K\u001b[1A\u001b[32mPass\u001b[0m", "Pass")]
    [InlineData("\u001b[?1049h", "")]
    [InlineData("name\r\nfake row", "name  fake row")]
    [InlineData("x\u009b31my", "xy")]
    [InlineData("x\u009d0;t\u009cy", "xy")]
    [InlineData("a\u0000b\u007fc\u0085d", "abcd")]
    [InlineData("evil\u202Etxt.exe", "eviltxt.exe")]
    [InlineData("plain llama3:8b-instruct", "plain llama3:8b-instruct")]
    [InlineData("日本語モデル", "日本語モデル")]
    public void Network_text_loses_every_control_character_and_escape_sequence(string hostile, string expected)
    {
        var clean = TerminalSafe.Clean(hostile);
        Assert.Equal(expected, clean);
        Assert.DoesNotContain(clean!, c => char.IsControl(c));
    }

    [Fact]
    public void The_Markdown_report_escapes_what_it_embeds()
    {
        var report = new DrillReport { CloudEndpoint = "https://api.example.com", BlockMethod = DrillBlockMethod.Simulated };
        report.Probes.Add(new DrillProbeResult
        {
            Sequence = 1, Probe = "p", Phase = "Failover", Timestamp = DateTimeOffset.UtcNow,
            Error = "<img src=x onerror=alert(1)> [click](http://evil.example) | forged | row\r\n| 2 | x |\u001b]0;title\u0007",
        });

        var md = DrillReportWriter.Render(report, DrillReportFormat.Markdown);
        var html = DrillReportWriter.Render(report, DrillReportFormat.Html);

        Assert.DoesNotContain("<img", md, StringComparison.Ordinal);
        Assert.Contains("&lt;img", md, StringComparison.Ordinal);
        Assert.Contains("\\[click\\]", md, StringComparison.Ordinal);
        Assert.DoesNotContain("| forged |", md, StringComparison.Ordinal);
        Assert.DoesNotContain('\u001b', md);
        Assert.Single(md.Split('\n'), l => l.StartsWith("| 1 |", StringComparison.Ordinal));
        Assert.DoesNotContain("<img", html, StringComparison.Ordinal);
        Assert.DoesNotContain('\u001b', html);
    }

    [Fact]
    public async Task A_hostile_Ollama_on_loopback_cannot_write_to_the_terminal_through_a_scan()
    {
        // A raw HTTP server on loopback: the banner, a version and model names full of escape sequences and CR/LF.
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var server = Task.Run(async () =>
        {
            while (!cts.IsCancellationRequested)
            {
                using var client = await listener.AcceptTcpClientAsync(cts.Token);
                var stream = client.GetStream();
                var reader = new StreamReader(stream, Encoding.ASCII);
                var requestLine = await reader.ReadLineAsync(cts.Token) ?? "";
                while (!string.IsNullOrEmpty(await reader.ReadLineAsync(cts.Token)))
                {
                }

                var body = requestLine.Contains("/api/version") ? "{\"version\":\"0.9.9\\u001b]0;owned\\u0007\\r\\n[Pass] fake\"}"
                    : requestLine.Contains("/api/tags") ? "{\"models\":[{\"name\":\"llama3\\u001b[2K\\u001b[1A\\u001b[32mPass\"},{\"name\":\"x\\r\\n[Pass] NetworkExposure 10.0.0.1\"},{\"name\":\"\\u001b]52;c;ZXZpbA==\\u0007\"}]}"
                    : "Ollama is running";
                var bytes = Encoding.UTF8.GetBytes(body);
                await stream.WriteAsync(Encoding.ASCII.GetBytes($"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {bytes.Length}\r\nConnection: close\r\n\r\n"), cts.Token);
                await stream.WriteAsync(bytes, cts.Token);
            }
        });

        var probe = await ExposureScanner.ProbeAsync(IPAddress.Loopback, port, TimeSpan.FromSeconds(5), null, default);
        var finding = ExposureScanner.ToFinding(new ScanTarget(IPAddress.Loopback, "127.0.0.1"), probe, new ExposureScanOptions())!;
        await cts.CancelAsync();

        Assert.True(probe.IsOllama);
        Assert.Equal(["llama3Pass", "x  [Pass] NetworkExposure 10.0.0.1"], probe.Models);
        foreach (var text in new[] { finding.Models, finding.Version, finding.Detail, finding.ToString() })
        {
            Assert.DoesNotContain(text, c => char.IsControl(c));
        }

        Assert.Equal("0.9.9  [Pass] fake", finding.Version);
    }
}
