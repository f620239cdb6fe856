using System.Management.Automation.Language;

namespace OllamaContinuity.PowerShellTests;

/// <summary>
/// Pester and pwsh do not run here; every PowerShell file of the repository (the Pester suite, its helpers,
/// build.ps1) must at least parse, so a reviewer's run does not stop at a typo.
/// </summary>
public sealed class PesterSyntaxTests
{
    public static TheoryData<string> PowerShellFiles()
    {
        var data = new TheoryData<string>();
        foreach (var f in Directory.EnumerateFiles(Path.Combine(ModuleSession.RepoRoot, "tests", "Pester"))
                     .Where(f => f.EndsWith(".ps1", StringComparison.Ordinal) || f.EndsWith(".psm1", StringComparison.Ordinal))
                     .Append(Path.Combine(ModuleSession.RepoRoot, "build.ps1"))
                     .Order(StringComparer.Ordinal))
        {
            data.Add(Path.GetRelativePath(ModuleSession.RepoRoot, f));
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(PowerShellFiles))]
    public void PowerShell_file_parses_without_errors(string file)
    {
        Parser.ParseFile(Path.Combine(ModuleSession.RepoRoot, file), out _, out var errors);
        Assert.True(errors.Length == 0, string.Join("\n", errors.Select(e => $"{e.Extent.StartLineNumber}: {e.Message}")));
    }

    [Fact]
    public void Every_Pester_file_imports_the_built_module()
    {
        foreach (var f in Directory.EnumerateFiles(Path.Combine(ModuleSession.RepoRoot, "tests", "Pester"), "*.Tests.ps1"))
        {
            Assert.Contains("out/OllamaContinuity/OllamaContinuity.psd1", File.ReadAllText(f));
        }
    }
}
