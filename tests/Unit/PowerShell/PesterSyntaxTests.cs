using System.Management.Automation.Language;

namespace OllamaContinuity.PowerShellTests;

/// <summary>Pester does not run here; its test files must at least parse, so a reviewer's run does not stop at a typo.</summary>
public sealed class PesterSyntaxTests
{
    [Theory]
    [InlineData("Hardening.Tests.ps1")]
    [InlineData("Exposure.Tests.ps1")]
    [InlineData("Contingency.Tests.ps1")]
    [InlineData("Drill.Tests.ps1")]
    public void Pester_file_parses_without_errors(string file)
    {
        Parser.ParseFile(Path.Combine(ModuleSession.RepoRoot, "tests", "Pester", file), out _, out var errors);
        Assert.True(errors.Length == 0, string.Join("\n", errors.Select(e => $"{e.Extent.StartLineNumber}: {e.Message}")));
    }
}
