using System.Diagnostics;
using System.IO.Compression;
using System.Text.RegularExpressions;
using System.Xml.Linq;
using OllamaContinuity.Drill;
using OllamaContinuity.TestSupport;

namespace OllamaContinuity.Tests.Drill;

/// <summary>
/// The HTML drill report's inline SVG timeline: its structure (one mark per probe, the block window, the recovery
/// point, nothing external), and what a browser really draws from it (headless Chromium's screenshot).
/// </summary>
public sealed class DrillReportTimelineTests
{
    private static readonly XNamespace Svg = "http://www.w3.org/2000/svg";

    /// <summary>A drill as FailoverDrill records it: preflight, a block with a failover, one failed probe, recovery.</summary>
    internal static DrillReport SampleReport()
    {
        var t0 = new DateTimeOffset(2026, 12, 1, 21, 0, 0, TimeSpan.Zero);
        var r = new DrillReport
        {
            StartedAt = t0,
            EndedAt = t0.AddSeconds(40),
            Outcome = "Failed",
            CloudEndpoint = "https://api.openai.com/v1/chat/completions",
            OllamaEndpoints = ["http://gpu01:11434/api/chat"],
            PlannedDurationSeconds = 20,
            IntervalSeconds = 4,
            TimeToFailoverSeconds = 0.4,
            TimeToRecoverSeconds = 6.5,
        };
        r.Steps.Add(new DrillStep { Name = "Preflight", Outcome = "Passed", StartedAt = t0, DurationSeconds = 1.2 });
        r.Steps.Add(new DrillStep { Name = "Block", Outcome = "Passed", StartedAt = t0.AddSeconds(2), DurationSeconds = 0.1 });
        r.Steps.Add(new DrillStep { Name = "Failover", Outcome = "Failed", StartedAt = t0.AddSeconds(2.2), DurationSeconds = 20, Detail = "1 of 5 probes failed" });
        r.Steps.Add(new DrillStep { Name = "Unblock", Outcome = "Passed", StartedAt = t0.AddSeconds(22.3), DurationSeconds = 0.1 });
        r.Steps.Add(new DrillStep { Name = "Recovery", Outcome = "Passed", StartedAt = t0.AddSeconds(22.5), DurationSeconds = 6.5 });
        var seq = 0;
        void Probe(string phase, double at, string? backend, double ms, bool passed) => r.Probes.Add(new DrillProbeResult
        {
            Sequence = ++seq, Probe = "default", Phase = phase, Timestamp = t0.AddSeconds(at), Backend = backend, LatencyMs = ms, Passed = passed,
            QualityPassed = passed, FailoverReason = backend == "Ollama" ? "ConnectionRefused" : null, Error = passed ? null : "all backends failed",
        });
        Probe("Preflight", 0.2, "Cloud", 420, true);
        Probe("Preflight", 0.8, "Ollama", 900, true);
        Probe("Failover", 2.5, "Ollama", 1300, true);
        Probe("Failover", 6.5, "Ollama", 1100, true);
        Probe("Failover", 10.5, null, 3000, false);
        Probe("Failover", 14.5, "Ollama", 1250, true);
        Probe("Failover", 18.5, "Ollama", 980, true);
        Probe("Recovery", 28.9, "Cloud", 450, true);
        return r;
    }

    private static XElement SvgOf(string html)
    {
        var m = Regex.Match(html, "<svg .*?</svg>", RegexOptions.Singleline);
        Assert.True(m.Success, "no inline <svg> in the HTML report");
        return XElement.Parse(m.Value);
    }

    private static bool HasClass(XElement e, string name) => ((string?)e.Attribute("class"))?.Split(' ').Contains(name) == true;

    [Fact]
    public void The_html_report_holds_an_inline_svg_with_one_mark_per_probe_the_block_window_and_the_recovery_point()
    {
        var report = SampleReport();
        var html = DrillReportWriter.Render(report, DrillReportFormat.Html);
        var svg = SvgOf(html);

        var marks = svg.Descendants().Where(e => HasClass(e, "probe")).ToList();
        Assert.Equal(report.Probes.Count, marks.Count);
        Assert.Equal(report.Probes.Select(p => p.Sequence.ToString(System.Globalization.CultureInfo.InvariantCulture)), marks.Select(m => (string?)m.Attribute("data-sequence")));
        Assert.Equal(2, marks.Count(m => m.Name == Svg + "circle")); // cloud
        Assert.Equal(5, marks.Count(m => m.Name == Svg + "rect"));   // ollama
        Assert.Single(marks, m => HasClass(m, "failed"));
        Assert.All(marks, m => Assert.NotNull(m.Element(Svg + "title")));

        // Probes are placed left to right by time, and higher latency is higher up (smaller y).
        var xs = marks.Select(m => double.Parse((string?)m.Attribute("cx") ?? (string?)m.Attribute("x") ?? Regex.Match((string)m.Attribute("d")!, @"M([\d.]+)").Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture)).ToList();
        Assert.Equal(xs.OrderBy(x => x), xs);

        var block = Assert.Single(svg.Descendants(Svg + "rect"), e => HasClass(e, "block-window"));
        var bx = double.Parse((string)block.Attribute("x")!, System.Globalization.CultureInfo.InvariantCulture);
        var bw = double.Parse((string)block.Attribute("width")!, System.Globalization.CultureInfo.InvariantCulture);
        // The failover probes (3 to 7) lie inside the block window; the preflight and recovery probes outside it.
        Assert.All(xs.Skip(2).Take(5), x => Assert.InRange(x + 5, bx, bx + bw + 10));
        Assert.True(xs[0] < bx && xs[^1] > bx + bw);

        var recovery = Assert.Single(svg.Descendants(Svg + "line"), e => HasClass(e, "recovery"));
        var rx = double.Parse((string)recovery.Attribute("x1")!, System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(rx > bx + bw, "the recovery point comes after the block");

        // Nothing to run and nothing to fetch: it opens anywhere and mails as one file.
        Assert.DoesNotContain("<script", html, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotMatch(@"(src|href)\s*=", html);
        Assert.DoesNotContain("url(", html, StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>The sample drill run with -Gateway: each probe also went through the gateway, which recovered a little later.</summary>
    internal static DrillReport SampleGatewayReport()
    {
        var inProcess = SampleReport();
        var r = new DrillReport
        {
            StartedAt = inProcess.StartedAt, EndedAt = inProcess.EndedAt, Outcome = inProcess.Outcome, CloudEndpoint = inProcess.CloudEndpoint,
            TimeToFailoverSeconds = inProcess.TimeToFailoverSeconds, TimeToRecoverSeconds = inProcess.TimeToRecoverSeconds,
            Gateway = "http://127.0.0.1:11435", GatewayTimeToFailoverSeconds = 0.6, GatewayTimeToRecoverSeconds = 8.5,
        };
        r.Steps.AddRange(inProcess.Steps);
        var seq = 0;
        foreach (var p in inProcess.Probes)
        {
            r.Probes.Add(new DrillProbeResult
            {
                Sequence = ++seq, Probe = p.Probe, Phase = p.Phase, Timestamp = p.Timestamp, Backend = p.Backend, LatencyMs = p.LatencyMs, Passed = p.Passed,
                QualityPassed = p.QualityPassed, FailoverReason = p.FailoverReason, Error = p.Error,
            });
            if (p.Phase != "Preflight" || p.Backend == "Cloud")
            {
                r.Probes.Add(new DrillProbeResult
                {
                    Sequence = ++seq, Probe = p.Probe, Phase = p.Phase, Timestamp = p.Timestamp.AddSeconds(p.LatencyMs / 1000), Path = DrillPath.Gateway,
                    Backend = p.Backend ?? "None", LatencyMs = p.LatencyMs + 200, Passed = p.Passed, QualityPassed = p.QualityPassed, FailoverReason = p.FailoverReason, Error = p.Error,
                });
            }
        }

        return r;
    }

    [Fact]
    public void Gateway_probes_are_hollow_marks_of_the_same_shape_and_the_gateway_recovery_a_dashed_line()
    {
        var report = SampleGatewayReport();
        var svg = SvgOf(DrillReportWriter.Render(report, DrillReportFormat.Html));

        var marks = svg.Descendants().Where(e => HasClass(e, "probe")).ToList();
        Assert.Equal(report.Probes.Count, marks.Count);
        var gateway = marks.Where(m => HasClass(m, "gateway")).ToList();
        Assert.Equal(report.Probes.Count(p => p.Path == DrillPath.Gateway), gateway.Count);
        Assert.All(gateway, m => Assert.Equal("Gateway", (string?)m.Attribute("data-path")));
        Assert.All(marks.Except(gateway), m => Assert.Equal("InProcess", (string?)m.Attribute("data-path")));
        // Hollow: white inside, the backend's colour as the outline; in-process marks stay filled.
        Assert.All(gateway.Where(m => !HasClass(m, "failed")), m =>
        {
            Assert.Equal("#ffffff", (string?)m.Attribute("fill"));
            Assert.Equal(HasClass(m, "ollama") ? DrillReportWriter.TimelineColors.Ollama : DrillReportWriter.TimelineColors.Cloud, (string?)m.Attribute("stroke"));
        });
        Assert.All(marks.Except(gateway).Where(m => !HasClass(m, "failed")), m => Assert.NotEqual("#ffffff", (string?)m.Attribute("fill")));
        var failedViaGateway = Assert.Single(gateway, m => HasClass(m, "failed"));
        Assert.NotNull(failedViaGateway.Attribute("stroke-dasharray"));
        Assert.Contains("through the gateway", failedViaGateway.Element(Svg + "title")!.Value);

        var lines = svg.Descendants(Svg + "line").Where(e => HasClass(e, "recovery")).ToList();
        Assert.Equal(2, lines.Count);
        var gatewayLine = Assert.Single(lines, e => HasClass(e, "gateway"));
        Assert.NotNull(gatewayLine.Attribute("stroke-dasharray"));
        Assert.True(double.Parse((string)gatewayLine.Attribute("x1")!, System.Globalization.CultureInfo.InvariantCulture)
            > double.Parse((string)lines.Single(e => !HasClass(e, "gateway")).Attribute("x1")!, System.Globalization.CultureInfo.InvariantCulture), "the gateway recovered later");
        Assert.Contains(svg.Descendants(Svg + "text"), t => t.Value == "hollow: through the gateway");
    }

    [Fact]
    public void A_drill_without_probes_or_block_still_renders_a_valid_svg()
    {
        var r = new DrillReport { CloudEndpoint = "https://api.openai.com/v1/chat/completions", Outcome = "NotStarted", StartedAt = DateTimeOffset.UtcNow, EndedAt = DateTimeOffset.UtcNow };
        var svg = SvgOf(DrillReportWriter.Render(r, DrillReportFormat.Html));
        Assert.DoesNotContain(svg.Descendants(), e => HasClass(e, "probe"));
        Assert.DoesNotContain(svg.Descendants(), e => HasClass(e, "block-window"));
    }

    [SkippableFact]
    public async Task Headless_chromium_draws_the_timeline_the_block_window_and_every_kind_of_mark()
    {
        Require.Tool("chromium");
        var dir = TestPaths.New("chromium");
        Directory.CreateDirectory(dir);
        var html = Path.Combine(dir, "drill.html");
        var png = Path.Combine(dir, "drill.png");
        DrillReportWriter.Write(SampleReport(), html, DrillReportFormat.Html);

        var psi = new ProcessStartInfo(Require.Which("chromium")!)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var a in new[]
        {
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", "--hide-scrollbars", "--user-data-dir=" + Path.Combine(dir, "profile"),
            "--window-size=1000,1200", "--screenshot=" + png, new Uri(html).AbsoluteUri,
        })
        {
            psi.ArgumentList.Add(a);
        }

        using var p = Process.Start(psi)!;
        var stderr = p.StandardError.ReadToEndAsync();
        _ = p.StandardOutput.ReadToEndAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(90));
        try
        {
            await p.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException("chromium did not finish within 90 s: " + await stderr);
        }

        Assert.True(File.Exists(png), "no screenshot: " + await stderr);
        var image = Png.Read(png);
        Assert.Equal(1000, image.Width);

        // Not blank: a good part of the page is drawn, and the timeline's own colours are on it.
        var nonWhite = image.Pixels().Count(c => c.R < 240 || c.G < 240 || c.B < 240);
        Assert.True(nonWhite > image.Width * image.Height / 100, $"the screenshot is nearly blank ({nonWhite} drawn pixels)");
        Assert.True(image.Count(DrillReportWriter.TimelineColors.Block) > 2000, "the block window is not drawn");
        Assert.True(image.Count(DrillReportWriter.TimelineColors.Ollama) > 5 * 60, "the Ollama marks are not drawn");
        Assert.True(image.Count(DrillReportWriter.TimelineColors.Cloud) > 2 * 60, "the cloud marks are not drawn");
        Assert.True(image.Count(DrillReportWriter.TimelineColors.Recovery) > 100, "the recovery line is not drawn");
        Assert.True(image.Count(DrillReportWriter.TimelineColors.NoBackend) > 20, "the failed probe is not drawn");
    }

    /// <summary>A minimal PNG reader (8-bit RGB or RGBA, not interlaced: what Chromium writes), for counting colours.</summary>
    private sealed class Png
    {
        private readonly byte[] _rgb;

        private Png(int width, int height, byte[] rgb) => (Width, Height, _rgb) = (width, height, rgb);

        public int Width { get; }
        public int Height { get; }

        public IEnumerable<(byte R, byte G, byte B)> Pixels()
        {
            for (var i = 0; i < _rgb.Length; i += 3)
            {
                yield return (_rgb[i], _rgb[i + 1], _rgb[i + 2]);
            }
        }

        /// <summary>Pixels within a small distance of an "#rrggbb" colour (anti-aliased edges excluded).</summary>
        public int Count(string hex)
        {
            var (r, g, b) = (Convert.ToByte(hex[1..3], 16), Convert.ToByte(hex[3..5], 16), Convert.ToByte(hex[5..7], 16));
            return Pixels().Count(c => Math.Abs(c.R - r) <= 6 && Math.Abs(c.G - g) <= 6 && Math.Abs(c.B - b) <= 6);
        }

        public static Png Read(string path)
        {
            var bytes = File.ReadAllBytes(path);
            Assert.True(bytes.AsSpan(0, 8).SequenceEqual(new byte[] { 137, 80, 78, 71, 13, 10, 26, 10 }), "not a PNG");
            int width = 0, height = 0, channels = 0;
            using var idat = new MemoryStream();
            for (var pos = 8; pos < bytes.Length;)
            {
                var length = System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(pos));
                var type = System.Text.Encoding.ASCII.GetString(bytes, pos + 4, 4);
                var data = bytes.AsSpan(pos + 8, length);
                if (type == "IHDR")
                {
                    width = System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(data);
                    height = System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(data[4..]);
                    Assert.Equal(8, data[8]);
                    channels = data[9] switch { 2 => 3, 6 => 4, var c => throw new NotSupportedException("PNG colour type " + c) };
                    Assert.Equal(0, data[12]);
                }
                else if (type == "IDAT")
                {
                    idat.Write(data);
                }

                pos += 12 + length;
            }

            idat.Position = 0;
            using var z = new ZLibStream(idat, CompressionMode.Decompress);
            using var raw = new MemoryStream();
            z.CopyTo(raw);
            var src = raw.ToArray();
            var stride = width * channels;
            var prev = new byte[stride];
            var cur = new byte[stride];
            var rgb = new byte[width * height * 3];
            for (var y = 0; y < height; y++)
            {
                var filter = src[y * (stride + 1)];
                Array.Copy(src, y * (stride + 1) + 1, cur, 0, stride);
                for (var i = 0; i < stride; i++)
                {
                    int a = i >= channels ? cur[i - channels] : 0, b = prev[i], c = i >= channels ? prev[i - channels] : 0;
                    cur[i] = (byte)(cur[i] + filter switch
                    {
                        0 => 0,
                        1 => a,
                        2 => b,
                        3 => (a + b) / 2,
                        4 => Paeth(a, b, c),
                        _ => throw new NotSupportedException("PNG filter " + filter),
                    });
                }

                for (var x = 0; x < width; x++)
                {
                    Array.Copy(cur, x * channels, rgb, (y * width + x) * 3, 3);
                }

                (prev, cur) = (cur, prev);
            }

            return new Png(width, height, rgb);
        }

        private static int Paeth(int a, int b, int c)
        {
            int p = a + b - c, pa = Math.Abs(p - a), pb = Math.Abs(p - b), pc = Math.Abs(p - c);
            return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
        }
    }
}
